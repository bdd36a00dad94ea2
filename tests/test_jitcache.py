"""The engine's cache fingerprint skips only modules that cannot change compiled code."""

from __future__ import annotations

import ast
from pathlib import Path

from bpfmc.worker import jitcache

WORKER = Path(jitcache.__file__).parent


def _imports_from(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(f"{node.module}.py")
            else:
                found |= {f"{a.name}.py" for a in node.names}
    return found


def test_pure_python_modules_have_no_compiled_code_and_feed_none():
    compiled = [p for p in WORKER.glob("*.py") if "njit" in p.read_text() or "@intrinsic" in p.read_text()]
    assert compiled, "the worker package has compiled modules"
    for name in sorted(jitcache.PURE_PYTHON):
        src = (WORKER / name).read_text()
        assert "njit" not in src and "@intrinsic" not in src, f"{name} defines compiled code"
    # Follow imports from compiled modules: none may reach a module left out of the fingerprint.
    seen, todo = set(), [p.name for p in compiled]
    while todo:
        name = todo.pop()
        if name in seen or not (WORKER / name).exists():
            continue
        seen.add(name)
        todo.extend(_imports_from(WORKER / name))
    assert not (seen & jitcache.PURE_PYTHON), f"compiled code imports from {seen & jitcache.PURE_PYTHON}"


def test_fingerprint_ignores_pure_python_edits_only(tmp_path):
    import shutil

    copy = tmp_path / "worker"
    shutil.copytree(WORKER, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = jitcache.engine_fingerprint(copy)
    assert before == jitcache.engine_fingerprint(WORKER)
    (copy / "pool.py").write_text((copy / "pool.py").read_text() + "\n# edited\n")
    assert jitcache.engine_fingerprint(copy) == before
    (copy / "interp.py").write_text((copy / "interp.py").read_text() + "\n# edited\n")
    assert jitcache.engine_fingerprint(copy) != before
