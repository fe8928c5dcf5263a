"""Score a whole search space with a saved predictor, in streamed chunks with bounded memory.

Graphs are built, predicted and written ``chunk`` at a time; the output goes to a temporary file renamed into place
at the end, so an interrupted run never leaves a half-written result.
"""

from __future__ import annotations

import csv
import os
import tempfile
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

from .batching import EncodedGraphs
from .graph import ArchGraph


def score_stream(predictor, items: Iterable[tuple[object, str]], to_graph: Callable[[str], ArchGraph],
                 out: str | os.PathLike, total: int | None = None, chunk: int = 8192, batch_size: int = 2048,
                 progress: bool = True) -> Path:
    """Write ``key,arch,prediction`` rows for every ``(key, arch)`` of ``items`` to the CSV ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="score", unit="arch", dynamic_ncols=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".part-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["key", "arch", "prediction"])
            it = iter(items)
            while block := list(islice(it, chunk)):
                pred = predictor.predict(EncodedGraphs([to_graph(a) for _, a in block]), batch_size=batch_size)
                w.writerows((k, a, f"{p:.6f}") for (k, a), p in zip(block, pred))
                if bar is not None:
                    bar.update(len(block))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if bar is not None:
            bar.close()
    return out
