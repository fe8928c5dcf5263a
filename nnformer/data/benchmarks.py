"""The files each benchmark is read from, fetched into the data directory when missing (what every verb that reads
a benchmark calls first)."""

from __future__ import annotations

import os
from pathlib import Path

from .registry import fetch_missing


def space_files(space: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """The registered files a search space is read from: ``nb201``'s tables, or for ``nb101`` the 2,500-cell subset
    unless the data directory holds an official NAS-Bench-101 file (which is never downloaded)."""
    if space == "nb201":
        from .nb201 import SOURCES

        return list(SOURCES)
    if space == "nb101":
        from .nb101 import SUBSET, find_nb101_source

        return [SUBSET] if find_nb101_source(data_dir)[0] == "subset" else []
    return []


def fetch_space(space: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory, once the files the search space ``space`` is read from are in it (:func:`space_files`,
    :func:`fetch_missing`)."""
    return fetch_missing(space_files(space, data_dir), data_dir)


def nb201_table(data_dir: str | os.PathLike | None = None):
    """The NAS-Bench-201 table (:func:`nnformer.data.nb201.load_nb201`), its files fetched first when missing."""
    from .nb201 import load_nb201

    return load_nb201(fetch_space("nb201", data_dir))
