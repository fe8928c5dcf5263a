"""Writing files so that a reader never sees half of one: write a temporary file beside the target, then rename.

A kill at any point leaves either the old file or the new one under the final name; the temporary file, named
``.tmp-<name>.*`` in the same directory, is removed on every error that Python sees (a SIGKILL can still leave one,
which :func:`remove_stale_temporaries` clears on the next run).
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=suffix or path.suffix)
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


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def remove_stale_temporaries(target: str | os.PathLike, whole_directory: bool = False) -> int:
    """Delete what a killed writer of ``target`` left beside it (``.tmp-<name>.*``); returns how many.

    ``whole_directory=True`` clears every ``.tmp-*`` file of the directory ``target``: only where no other writer
    can be at work (a directory held with :func:`exclusive_lock`)."""
    target = Path(target)
    folder, pattern = (target, TMP_PREFIX + "*") if whole_directory else (target.parent, f"{TMP_PREFIX}{target.name}.*")
    n = 0
    if folder.is_dir():
        for p in folder.glob(pattern):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n


def read_jsonl(path: str | os.PathLike, strict: bool = False) -> list[dict]:
    """The records of a JSON-lines file (gzip-compressed when the name ends in ``.gz``); a missing file has none.

    A torn last line of a plain file (a writer killed mid-line) is skipped: what an append-only store that resumes
    wants. ``strict=True`` (a dataset read to train or evaluate on) refuses it instead, and every line must be a JSON
    object. Any other line that is not JSON, or any damage in a ``.gz`` file (only ever written whole), is a
    :class:`~nnformer.errors.DataError` naming the file and line."""
    return [rec for _, rec in read_jsonl_numbered(path, strict)]


def read_jsonl_numbered(path: str | os.PathLike, strict: bool = False) -> list[tuple[int, dict]]:
    """:func:`read_jsonl`'s records with their line numbers (from 1), for messages that point at a line."""
    import gzip
    import zlib

    from .errors import DataError, one_line

    path = Path(path)
    if not path.is_file():
        return []
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else
              open(path, encoding="utf-8")) as f:
            lines = f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {type(e).__name__}: {one_line(e)}") from None
    out = []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if k == len(lines) - 1 and path.suffix != ".gz":
                if not strict:
                    break  # torn tail: cut by the next append
                raise DataError(f"{path}: line {k + 1}, the last, is cut short (a writer killed mid-line, or a "
                                f"partial copy)") from None
            raise DataError(f"{path}: line {k + 1} is not JSON (file damaged?)") from None
        if strict and not isinstance(rec, dict):
            raise DataError(f"{path}: line {k + 1} is not a JSON object")
        out.append((k + 1, rec))
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
    """One writer per directory: a second process asking for the lock gets :class:`~nnformer.errors.DataError`.
    The lock is on the directory itself (no lock file is left behind) and ends with the process."""
    from .errors import DataError

    try:
        import fcntl
    except ImportError:  # not on Windows: no lock
        yield
        return
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DataError(f"another {what} is writing to {d}") from None
        yield
    finally:
        os.close(fd)


def check_output_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, before any work, an output directory that cannot be written: a path naming a file, or a place where
    no directory can be made (read-only, /proc, no permission). Leaves the file system as it found it."""
    return _probe(Path(path), what, directory=True)


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, before any work, an output file that cannot be written: a path naming a directory, or a folder where
    no file can be made. An existing file is left alone (it is replaced only when the new one is complete)."""
    return _probe(Path(path), what, directory=False)


def _probe(path: Path, what: str, directory: bool) -> Path:
    from .errors import NNFormerError

    if directory and path.exists() and not path.is_dir():
        raise NNFormerError(f"{what} {path} exists and is not a directory")
    if not directory and path.is_dir():
        raise NNFormerError(f"{what} {path} is a directory; name a file")
    folder = path if directory else path.parent
    made = []
    try:
        for d in reversed([folder, *folder.parents]):
            if not d.exists():
                d.mkdir()
                made.append(d)
            elif not d.is_dir():
                raise NNFormerError(f"{what} {path}: {d} is a file, not a directory")
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise NNFormerError(f"cannot write {what} {path}: {e.strerror or e}") from None
    finally:
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:
                pass
    return path
