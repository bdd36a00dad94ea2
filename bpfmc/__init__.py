"""bpfmc: a multi-core eBPF execution service.

Subpackages are mapped from the repository's top-level folders: ``bpfmc.ebpf`` (the language),
``bpfmc.worker`` (the emulated machine), ``bpfmc.client`` (SDK and ``bpfctl``).
"""

__version__ = "0.1.0"
