"""Shared helpers of the benchmark scripts: machine description and result files that name their command."""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from pathlib import Path

from nnformer.io import atomic_write_text
from nnformer.machine import describe as machine  # noqa: F401  (re-exported for the scripts)

RESULTS = Path(__file__).resolve().parent / "results"


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_json(name: str, obj) -> Path:
    """A bare file name goes to benchmarks/results/performance/; a path with a directory is taken as given."""
    path = Path(name)
    if path.parent == Path("."):
        path = RESULTS / "performance" / name
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
