"""Score a whole search space with a saved predictor, in streamed chunks with bounded memory.

Graphs are built, predicted and written ``chunk`` at a time; the output goes to a temporary file renamed into place
at the end, so an interrupted run never leaves a half-written result.
"""

from __future__ import annotations

import csv
import os
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

from .graph import ArchGraph
from .io import atomic_open, remove_stale_temporaries


HEADER = ("key", "arch", "prediction")


def check_scores_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, before any work, an existing file at ``path`` other than an earlier scores CSV (which a new one
    replaces once complete): a typo must not overwrite an unrelated file."""
    from .errors import NNFormerError

    path = Path(path)
    if path.exists() and not path.is_dir():
        try:
            with open(path, "rb") as f:
                first = f.readline(256).rstrip(b"\r\n")
        except OSError:
            first = b""
        if first != ",".join(HEADER).encode():
            raise NNFormerError(f"{what} {path} exists and is not a scores CSV (first line {','.join(HEADER)}); "
                                f"name a new file or remove it")
    return path


def score_stream(predictor, items: Iterable[tuple[object, str]], to_graph: Callable[[str], ArchGraph],
                 out: str | os.PathLike, total: int | None = None, chunk: int = 8192, batch_size: int = 2048,
                 progress: bool = True) -> Path:
    """Write ``key,arch,prediction`` rows for every ``(key, arch)`` of ``items`` to the CSV ``out``."""
    out = Path(out)
    remove_stale_temporaries(out)  # of an earlier run killed while writing this file
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="score", unit="arch", dynamic_ncols=True)
    try:
        with atomic_open(out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HEADER)
            it = iter(items)
            while block := list(islice(it, chunk)):
                pred = predictor.predict(predictor.encode([to_graph(a) for _, a in block]), batch_size=batch_size)
                w.writerows((k, a, f"{p:.6f}") for (k, a), p in zip(block, pred))
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return out
