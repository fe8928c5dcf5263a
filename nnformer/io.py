"""Writing files so that a reader never sees half of one: write a temporary file beside the target, then rename.

A kill at any point leaves either the old file or the new one under the final name; the temporary file, named
``.tmp-*`` in the same directory, is removed on every error that Python sees (a SIGKILL can still leave one, which
:func:`remove_stale_temporaries` clears on the next run).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

TMP_PREFIX = ".tmp-"


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on normal exit it replaces ``path``, on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=suffix or path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets what open() would have given it
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kw) -> Iterator[IO]:
    """``open`` for writing whose content appears under ``path`` only when the block ends without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **kw) as f:
        yield f


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 1) -> Path:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=indent)
    return Path(path)


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    import torch

    with atomic_path(path, ".pt") as tmp:
        torch.save(obj, tmp)
    return Path(path)


def remove_stale_temporaries(directory: str | os.PathLike, suffix: str = "") -> int:
    """Delete the ``.tmp-*<suffix>`` files a killed writer left in ``directory``; returns how many. Call it only
    where no other writer can be at work (e.g. a run's own output directory, under its lock)."""
    n = 0
    d = Path(directory)
    if d.is_dir():
        for p in d.glob(TMP_PREFIX + "*" + suffix):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines file (gzip-compressed when the name ends in ``.gz``).

    A torn last line of a plain file (a writer killed mid-line) is skipped; any other line that is not JSON, or
    any damage in a ``.gz`` file (only ever written whole), is a :class:`~nnformer.errors.DataError`."""
    import gzip

    from .errors import DataError

    path = Path(path)
    if not path.is_file():
        return []
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else
              open(path, encoding="utf-8")) as f:
            lines = f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    out = []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if k == len(lines) - 1 and path.suffix != ".gz":
                break  # torn tail: cut by the next append
            raise DataError(f"{path}: line {k + 1} is not JSON (file damaged?)") from None
    return out


def drop_torn_tail(path: str | os.PathLike) -> None:
    """Cut a partial last line, so the next append starts on a line of its own."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


class JsonlAppender:
    """Appends one JSON record a line, flushed and synced: a kill loses at most the line being written."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        drop_torn_tail(path)
        self.f = open(path, "a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def exclusive_lock(directory: str | os.PathLike, what: str) -> Iterator[None]:
    """One writer per directory: a second process asking for the lock gets :class:`~nnformer.errors.DataError`."""
    from .errors import DataError

    try:
        import fcntl
    except ImportError:  # not on Windows: no lock
        yield
        return
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DataError(f"another {what} is writing to {d}") from None
        yield
