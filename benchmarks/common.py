"""Shared helpers of the benchmark scripts: machine description and result files that name their command."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    # the vector ISA torch dispatches to (AVX2 / AVX512): two "AMD EPYC" hosts of this project differed in it, and
    # with it in speed and in the last bits of float sums (so the same seed gave another tau)
    return {"cpu": cpu, "cpu_isa": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform()}


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_json(name: str, obj) -> Path:
    """A bare file name goes to benchmarks/results/; a path with a directory is taken as given."""
    path = Path(name)
    if path.parent == Path("."):
        path = RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
    return path
