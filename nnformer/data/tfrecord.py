"""TFRecord files without TensorFlow: CRC32C, record framing, a streaming reader and a writer.

A TFRecord file is a plain concatenation of records, each::

    uint64 length                      little-endian
    uint32 masked_crc32c(length bytes)
    byte   data[length]
    uint32 masked_crc32c(data)

with ``masked(crc) = (((crc >> 15) | (crc << 17)) + 0xa282ead8) mod 2**32`` and CRC32C the Castagnoli CRC
(reflected polynomial ``0x82F63B78``). The reader checks both checksums of every record and raises
:class:`DataError` naming the byte offset of the first bad record: a corrupt record is never skipped, because a
benchmark table silently missing rows would bias every experiment run on it.

Speed: the length CRC (8 bytes) is computed per record in Python; data CRCs are computed for a few thousand records
at once with numpy (:func:`crc32c_many`), which keeps a 2 GB file at tens of seconds instead of many minutes.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import DataError

_POLY = 0x82F63B78  # CRC32C (Castagnoli), bit-reflected


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (_POLY if c & 1 else 0)
        table.append(c)
    return table


CRC32C_TABLE = _make_table()
_TABLE_NP = np.array(CRC32C_TABLE, dtype=np.uint32)
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
_HEADER = 12  # uint64 length + uint32 length CRC
_FOOTER = 4  # uint32 data CRC
_CHUNK = 4 << 20  # bytes read per step: bounds memory whatever the file size
_BATCH_BYTES = 8 << 20  # padded bytes per numpy CRC group


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C of ``data``, continuing from ``crc`` (pure Python; fine for short inputs)."""
    c = crc ^ _U32
    t = CRC32C_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ _U32


def crc32c_many(chunks: Sequence[bytes]) -> np.ndarray:
    """CRC32C of each byte string, computed in lockstep across strings with numpy; returns a ``uint32`` array.

    Strings are sorted by length and laid out as columns of a ``(max_len, n)`` matrix, so step ``k`` updates the
    registers of the strings longer than ``k`` with one vectorised table lookup.
    """
    n = len(chunks)
    out = np.empty(n, dtype=np.uint32)
    if n == 0:
        return out
    lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")
    i = 0
    while i < n:
        longest = int(lengths[order[i]])
        # a group holds strings of at least half its longest length (bounded padding work), within a byte budget
        g = int(np.searchsorted(-lengths[order[i:]], -(longest // 2), side="right"))
        g = max(1, min(g, _BATCH_BYTES // max(longest, 1)))
        idx = order[i:i + g]
        i += g
        if g < 16:  # few strings of this length: numpy steps on tiny arrays would be slower than plain Python
            for k in idx:
                out[k] = crc32c(chunks[k])
            continue
        lens = lengths[idx]  # descending
        mat = np.zeros((longest, g), dtype=np.uint8)
        for col, k in enumerate(idx):
            mat[: lens[col], col] = np.frombuffer(chunks[k], dtype=np.uint8)
        # active[k] = number of strings longer than k (a prefix of the columns, as lengths are descending)
        active = g - np.searchsorted(lens[::-1], np.arange(longest), side="right")
        reg = np.full(g, _U32, dtype=np.uint32)
        for k in range(longest):
            m = active[k]
            r = reg[:m]
            reg[:m] = _TABLE_NP[(r ^ mat[k, :m]) & 0xFF] ^ (r >> 8)
        out[idx] = reg ^ np.uint32(_U32)
    return out


def mask_crc(crc: int) -> int:
    """The TFRecord CRC mask: rotate right by 15 bits and add a constant (mod 2**32)."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def encode_record(data: bytes) -> bytes:
    """One framed TFRecord record holding ``data``."""
    head = struct.pack("<Q", len(data))
    return (head + struct.pack("<I", mask_crc(crc32c(head))) + data
            + struct.pack("<I", mask_crc(crc32c_many([data])[0].item())))


def write_tfrecords(path: str | os.PathLike, records: Iterable[bytes]) -> Path:
    """Write ``records`` as a TFRecord file (used by tests and for small exports)."""
    path = Path(path)
    with open(path, "wb") as f:
        for data in records:
            f.write(encode_record(bytes(data)))
    return path


def _check_batch(path: Path, batch: list[tuple[int, bytes, int]]) -> None:
    """Raise for the first record of ``batch`` whose data CRC does not match."""
    if not batch:
        return
    crcs = crc32c_many([d for _, d, _ in batch])
    for (offset, _, stored), crc in zip(batch, crcs.tolist()):
        if mask_crc(crc) != stored:
            raise DataError(f"{path}: record at byte offset {offset}: data CRC32C mismatch (the file is corrupt)")


def iter_tfrecords(path: str | os.PathLike, progress: bool = False,
                   desc: str | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(byte offset, data)`` of each record of a TFRecord file, streaming it in 4 MiB steps.

    Raises:
        DataError: a record is truncated or fails a CRC check; the message names the record's byte offset.
            Records before the bad one may already have been yielded.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None
    from tqdm import tqdm

    with f, tqdm(total=size, unit="B", unit_scale=True, desc=desc or path.name, disable=not progress) as bar:
        buf = b""
        base = 0  # file offset of buf[0]
        eof = False
        while True:
            batch: list[tuple[int, bytes, int]] = []
            pos = 0
            need = _HEADER
            while len(buf) - pos >= _HEADER:
                offset = base + pos
                head = buf[pos:pos + 8]
                (length,) = struct.unpack_from("<Q", buf, pos)
                (stored,) = struct.unpack_from("<I", buf, pos + 8)
                if mask_crc(crc32c(head)) != stored:
                    _check_batch(path, batch)
                    raise DataError(f"{path}: record at byte offset {offset}: length CRC32C mismatch "
                                    f"(the file is corrupt)")
                end = pos + _HEADER + length + _FOOTER
                if offset + _HEADER + length + _FOOTER > size:
                    _check_batch(path, batch)
                    raise DataError(f"{path}: record at byte offset {offset} is truncated: it needs "
                                    f"{_HEADER + length + _FOOTER} bytes, the file ends after {size - offset}")
                if end > len(buf):
                    need = end - pos
                    break
                (dcrc,) = struct.unpack_from("<I", buf, end - _FOOTER)
                batch.append((offset, buf[pos + _HEADER:end - _FOOTER], dcrc))
                pos = end
                need = _HEADER
            _check_batch(path, batch)
            yield from ((o, d) for o, d, _ in batch)
            bar.update(pos)
            buf, base = buf[pos:], base + pos
            if eof:
                if buf:
                    raise DataError(f"{path}: record at byte offset {base} is truncated: only {len(buf)} bytes "
                                    f"of its {_HEADER}-byte header remain")
                return
            more = f.read(max(_CHUNK, need - len(buf)))
            if len(more) < max(_CHUNK, need - len(buf)):
                eof = True
            buf += more
