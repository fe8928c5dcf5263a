"""Where latency labels come from, read the same way by every command and by Python users.

A source is one of:

* ``help-nb201:DEVICE`` / ``help-fbnet:DEVICE``: HELP's measured latency of the 15,625 NAS-Bench-201 cells or the
  5,000 FBNet networks on one of its devices (``fpga``, ``pixel2``, ``gold_6226``, ...);
* a dataset directory written by ``nnformer profile --out DIR``: whole ONNX networks of several families, each with
  its measured latency.

>>> parse_source("help-nb201:fpga").name
'help-nb201-fpga'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NNFormerError

HELP_SPACES = ("help-nb201", "help-fbnet")


@dataclass(frozen=True)
class LatencySource:
    spec: str  # as the user wrote it
    kind: str  # "help-nb201", "help-fbnet" or "dataset"
    device: str | None = None  # a HELP device
    path: Path | None = None  # a dataset directory

    @property
    def name(self) -> str:
        """``help-nb201-fpga``, or ``dir:PATH`` for a dataset directory (as results record it)."""
        return f"dir:{self.spec}" if self.kind == "dataset" else f"{self.kind}-{self.device}"

    @property
    def title(self) -> str:
        if self.kind == "dataset":
            return f"latency dataset {self.spec}"
        return f"HELP {'FBNet' if self.kind == 'help-fbnet' else 'NB201'} latency on {self.device}"


@dataclass(frozen=True)
class LatencyData:
    source: LatencySource
    graphs: list  # ArchGraph each; a dataset's carry their static features
    ms: np.ndarray  # measured latency, milliseconds
    families: list[str] | None = None  # a dataset's model families
    rows: list[dict] | None = None  # a dataset's records (id, family, index, ...)


def parse_source(spec: str | os.PathLike | None, what: str = "--data") -> LatencySource:
    """``help-nb201:DEVICE``, ``help-fbnet:DEVICE`` or an existing directory; anything else is a one-line
    :class:`~nnformer.errors.NNFormerError` (the device is checked when its labels are read)."""
    text = "" if spec is None else str(spec)
    if text and os.path.isdir(text):
        return LatencySource(text, "dataset", path=Path(text))
    kind, _, device = text.partition(":")
    if kind not in HELP_SPACES or not device:
        raise NNFormerError(f"{what} must be help-nb201:DEVICE or help-fbnet:DEVICE (HELP's latencies) or a latency "
                            f"dataset directory (`nnformer profile --out DIR`), got {text!r}")
    return LatencySource(text, kind, device=device)


def load_latency_data(spec: str | os.PathLike | LatencySource, data_dir=None,
                      correct_drift: bool = False) -> LatencyData:
    """The graphs and measured latencies of a source. For HELP, a missing benchmark file is downloaded into
    ``data_dir`` and checked; an unknown device is refused before any other file is read. ``correct_drift``: a
    dataset's labels divided by the host's speed at their time (its reference timings)."""
    src = spec if isinstance(spec, LatencySource) else parse_source(spec)
    if src.kind == "dataset":
        from .dataset import load_training_set  # ONNX is imported only for a dataset directory

        rows, graphs, ms, families = load_training_set(src.path, correct_drift=correct_drift)
        return LatencyData(src, graphs, ms, families, rows)
    if correct_drift:
        raise NNFormerError(f"--correct-drift needs a latency dataset directory, got {src.spec!r}")
    from ..data.help import load_help_latency

    ms = load_help_latency(src.kind.removeprefix("help-"), src.device, data_dir)
    if src.kind == "help-fbnet":
        from ..data.help import fbnet_graphs

        graphs = fbnet_graphs(data_dir)[0]
    else:
        from ..data.benchmarks import nb201_table

        graphs = nb201_table(data_dir).graphs
    return LatencyData(src, graphs, ms)
