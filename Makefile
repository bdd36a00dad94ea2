# Each target creates the virtual environment it needs (./.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean

# The main job on embedded defaults: run an example program on the engine and print its result.
run: $(STAMP)
	$(BIN)/bpfctl exec examples/checksum.s --data 450000730000400040110000c0a80001c0a800c7 --json --pretty

# The whole test suite (kernel-differential tests skip with a reason where bpf() is not permitted).
test: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_engine.py

lint: $(STAMP)
	$(BIN)/ruff check .

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info
