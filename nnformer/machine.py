"""Where and by what a number was measured: the one description of the machine (and of the code version) that
every result file carries.

Hosts of one name differ (AVX2 or AVX-512 kernels: another speed, and floats summed in another order, so the same
seed can give another tau); a result names the CPU, the vector ISA torch dispatches to, cores, threads and versions.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe() -> dict:
    """CPU, vector ISA, cores, Python, torch and its thread count, OS."""
    import torch

    return {"cpu": cpu_model(), "cpu_isa": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform()}


def describe_line(d: dict | None = None) -> str:
    """One line for a table header, e.g. ``AMD EPYC 7B13 (AVX512), 2 cores, torch 2.13.0+cpu``."""
    d = d or describe()
    return f"{d['cpu']} ({d['cpu_isa']}), {d['cores']} cores, torch {d['torch']}"


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """The package version, plus the git commit (``+dirty`` with uncommitted changes) when run from a checkout.

    Asked once per process, at its first call (a run calls it as it starts): the code a process runs is the code it
    imported, whatever is committed or edited while it works."""
    from . import __version__

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                "nnformer", ":(exclude)nnformer/predictors"],  # shipped weights are data, not code
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return __version__
    if head.returncode != 0:
        return __version__
    return f"{__version__}+g{head.stdout.strip()}" + ("+dirty" if dirty.stdout.strip() else "")
