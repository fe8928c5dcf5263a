"""HELP's latency measurements (Lee et al., NeurIPS 2021; github HayeonLee/HELP): NAS-Bench-201 cells and FBNet
networks timed on 23 devices each.

A device file is a list of latencies in milliseconds whose position is the NAS-Bench-201 index (the row order of
:func:`nnformer.data.nb201.load_nb201`) or the index into FBNet's ``arch.pt``. Each file is checked against its
sha256 before it is read, and read with ``torch.load(weights_only=True)``.

Example:
    >>> ms = load_help_latency("nb201", "fpga", "../shared/data")  # doctest: +SKIP
    >>> ms.shape  # doctest: +SKIP
    (15625,)
"""

from __future__ import annotations

import numpy as np

from ..errors import ArchStringError, DataError
from .registry import RAW_FILES, verified_path

_FOLDERS = {"nb201": "latency/help/nasbench201/latency", "fbnet": "latency/help/fbnet/latency"}
_SIZES = {"nb201": 15625, "fbnet": 5000}


def help_devices(space: str) -> list[str]:
    """The devices HELP measured for ``space`` (``nb201`` or ``fbnet``)."""
    if space not in _FOLDERS:
        raise DataError(f"HELP has no latency for {space!r}; spaces: {', '.join(_FOLDERS)}")
    prefix = _FOLDERS[space] + "/"
    return sorted(n.removeprefix(prefix).removesuffix(".pt") for n in RAW_FILES if n.startswith(prefix))


def load_help_latency(space: str, device: str, data_dir=None) -> np.ndarray:
    """Latencies in ms of every architecture of ``space`` on ``device``, in the benchmark's index order."""
    import torch

    devices = help_devices(space)
    if device not in devices:
        raise DataError(f"unknown HELP device {device!r} for {space}; devices: {', '.join(devices)}")
    path = verified_path(f"{_FOLDERS[space]}/{device}.pt", data_dir)
    try:
        values = torch.load(path, map_location="cpu", weights_only=True)
        ms = np.asarray(values, dtype=np.float64).ravel()
    except Exception as e:  # a file that passed its sha256 but does not hold numbers: a registry mistake
        raise DataError(f"{path}: not a list of latencies ({type(e).__name__})") from None
    if len(ms) != _SIZES[space]:
        raise DataError(f"{path}: {len(ms)} latencies, expected {_SIZES[space]}")
    if not np.all(np.isfinite(ms)) or ms.min() <= 0:
        raise DataError(f"{path}: latencies must be positive and finite")
    return ms


def load_fbnet_archs(data_dir=None) -> list[tuple[int, ...]]:
    """HELP's 5,000 FBNet architectures (``arch.pt``, sha256-checked, read with ``weights_only=True``), in the
    order of its latency files."""
    import torch

    from ..spaces.fbnet import check_arch

    path = verified_path("latency/help/fbnet/arch.pt", data_dir)
    try:
        archs = torch.load(path, map_location="cpu", weights_only=True)
        return [check_arch(a) for a in archs]
    except (ArchStringError, TypeError, RuntimeError) as e:
        raise DataError(f"{path}: not a list of FBNet architectures ({type(e).__name__})") from None


def fbnet_graphs(data_dir=None) -> tuple[list, dict[str, np.ndarray]]:
    """HELP's 5,000 FBNet networks as chain graphs, and their FLOPs and parameters
    (:func:`nnformer.spaces.fbnet.fbnet_cost`)."""
    from ..spaces.fbnet import arch_to_graph, fbnet_cost

    archs = load_fbnet_archs(data_dir)
    cost = np.array([fbnet_cost(a) for a in archs], dtype=np.float64)
    return [arch_to_graph(a) for a in archs], {"flops": cost[:, 0], "params": cost[:, 1]}
