"""The NAS-Bench-101 table: pruned cells, their official module hashes and CIFAR-10 accuracy labels.

Three source formats are read, all into one :class:`NB101Table`:

* ``tfrecord`` - the official ``nasbench_only108.tfrecord`` / ``nasbench_full.tfrecord`` (google-research/nasbench),
  read without TensorFlow. Each record is the JSON list ``[module_hash, epochs, raw_adjacency, raw_operations,
  raw_metrics]``: ``raw_adjacency`` the row-major 0/1 digits of the matrix, ``raw_operations`` comma-separated op
  names, ``raw_metrics`` a base64 ``ModelMetrics`` protobuf. Only 108-epoch records give labels; each cell has 3 of
  them (repeats), and a repeat's result is its last ``EvaluationData`` (end of training).
* ``json`` - ``nasbench101.json`` of the NAR-Former / NN-Former preprocessing: ``{index: {module_adjacency,
  module_operations, validation_accuracy, test_accuracy, ...}}``, accuracies already 3-repeat means, ops as names
  or as the ids of :data:`~nnformer.spaces.nb101.NODE_OPS`.
* ``subset`` - the 2,500-cell ``nasbench101/nasbench1_2500.json`` of the data registry (``[[adjacency, ops],
  accuracy]``). It has **one** accuracy per cell, and upstream does not say whether it is validation or test
  accuracy; it is used as both ``val`` and ``test``, so on this subset the two labels are identical.

Labels: ``val`` / ``test`` = mean over the 3 repeats of the final validation / test accuracy at 108 epochs, as
fractions in [0, 1] (NAS-Bench-101 stores fractions; NAS-Bench-201 labels in this package are percentages).
Rows keep file order (for the official file: order of first appearance of each hash, which is the index order of
``nasbench101.json``). A NaN or out-of-range label, or a malformed entry, raises :class:`DataError` naming the entry.

The converted table is cached as a plain ``.npz`` (no pickle) in the processed cache, keyed on the source file's
sha256, so a later load reads only that file.

**STATS:** official: 423,624 cells, 2-7 nodes; subset: 2,500 cells (12 of 5 nodes, 374 of 6, 2,114 of 7), accuracy
mean 0.8948, max 0.9402.

Example:
    >>> t = load_nb101("../shared/data")                     # doctest: +SKIP
    >>> len(t), round(float(t.label("val").max()), 4)        # doctest: +SKIP
    (2500, 0.9402)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import DataError, SpecError
from ..io import atomic_path
from ..graph import ArchGraph
from ..spaces.nb101 import MAX_VERTICES, NODE_OPS, canonical_hash, canonical_spec
from . import protowire as pw
from .registry import processed_dir, sha256_of, verified_path
from .tfrecord import iter_tfrecords, write_tfrecords

FORMAT_VERSION = 1
SUBSET = "nasbench101/nasbench1_2500.json"
TFRECORD_NAMES = ("nasbench_only108.tfrecord", "nasbench_full.tfrecord")  # preferred first: 108 epochs only
JSON_NAME = "nasbench101.json"
KINDS = ("tfrecord", "json", "subset")
LABEL_EPOCHS = 108
REPEATS = 3
LABELS = ("val", "test")
_OP_ID = {op: i for i, op in enumerate(NODE_OPS)}


# --- ModelMetrics protobuf (nasbench/lib/model_metrics.proto) -------------------------------------------------------

@dataclass
class EvaluationData:
    """One evaluation during training (message ``EvaluationData``, fields 1-6)."""

    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    checkpoint_path: str = ""


_EVAL_DOUBLES = ("current_epoch", "training_time", "train_accuracy", "validation_accuracy", "test_accuracy")


@dataclass
class ModelMetrics:
    """Message ``ModelMetrics``: evaluations (field 1), ``int32 trainable_parameters`` (2), ``double total_time`` (3)."""

    evaluation_data: list[EvaluationData] = field(default_factory=list)
    trainable_parameters: int = 0
    total_time: float = 0.0


def _decode_evaluation(buf: bytes) -> EvaluationData:
    ev = EvaluationData()
    for num, wire, value in pw.iter_fields(buf):
        if 1 <= num <= 5:
            if wire != pw.I64:
                raise ValueError(f"EvaluationData field {num} has wire type {wire}, expected 1 (double)")
            setattr(ev, _EVAL_DOUBLES[num - 1], pw.as_double(value))
        elif num == 6:
            if wire != pw.LEN:
                raise ValueError(f"EvaluationData field 6 has wire type {wire}, expected 2 (string)")
            ev.checkpoint_path = value.decode("utf-8")
        # unknown fields are skipped, as protobuf parsers do
    return ev


def decode_model_metrics(raw: bytes) -> ModelMetrics:
    """Parse a serialized ``ModelMetrics``; raises :class:`ValueError` if it is malformed."""
    m = ModelMetrics()
    for num, wire, value in pw.iter_fields(raw):
        if num == 1:
            if wire != pw.LEN:
                raise ValueError(f"ModelMetrics field 1 has wire type {wire}, expected 2 (message)")
            m.evaluation_data.append(_decode_evaluation(value))
        elif num == 2:
            # int32 in the official proto; a double is accepted too (some re-exports declare it so)
            if wire == pw.VARINT:
                m.trainable_parameters = pw.to_signed64(value)
            elif wire == pw.I64:
                m.trainable_parameters = int(pw.as_double(value))
            else:
                raise ValueError(f"ModelMetrics field 2 has wire type {wire}, expected 0 (int32)")
        elif num == 3:
            if wire != pw.I64:
                raise ValueError(f"ModelMetrics field 3 has wire type {wire}, expected 1 (double)")
            m.total_time = pw.as_double(value)
    return m


def encode_model_metrics(m: ModelMetrics) -> bytes:
    """Serialize a ``ModelMetrics`` (used by tests and :func:`write_nb101_tfrecord`)."""
    out = bytearray()
    for ev in m.evaluation_data:
        body = b"".join(pw.encode_field(i, pw.I64, getattr(ev, name)) for i, name in enumerate(_EVAL_DOUBLES, 1))
        if ev.checkpoint_path:
            body += pw.encode_field(6, pw.LEN, ev.checkpoint_path)
        out += pw.encode_field(1, pw.LEN, body)
    out += pw.encode_field(2, pw.VARINT, int(m.trainable_parameters))
    out += pw.encode_field(3, pw.I64, m.total_time)
    return bytes(out)


# --- official TFRecord rows -----------------------------------------------------------------------------------------

@dataclass
class NB101Record:
    """One row of the official file: one training run (repeat) of one cell at one epoch budget."""

    module_hash: str
    epochs: int
    matrix: np.ndarray
    ops: list[str]
    metrics: ModelMetrics


def _parse_raw_spec(raw_adjacency, raw_operations) -> tuple[np.ndarray, list[str]]:
    if not isinstance(raw_adjacency, str) or not isinstance(raw_operations, str):
        raise ValueError("raw_adjacency and raw_operations must be strings")
    n = math.isqrt(len(raw_adjacency))
    if n * n != len(raw_adjacency) or n == 0:
        raise ValueError(f"raw_adjacency has {len(raw_adjacency)} digits, not a square number")
    if set(raw_adjacency) - {"0", "1"}:
        raise ValueError(f"raw_adjacency holds characters other than 0/1: {raw_adjacency!r}")
    matrix = (np.frombuffer(raw_adjacency.encode("ascii"), dtype=np.uint8) - ord("0")).reshape(n, n)
    return matrix, raw_operations.split(",")


def _split_row(data: bytes) -> list:
    row = json.loads(data.decode("utf-8"))
    if not (isinstance(row, list) and len(row) == 5):
        raise ValueError("record is not a JSON list [module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]")
    if not isinstance(row[0], str) or not isinstance(row[1], int) or isinstance(row[1], bool):
        raise ValueError("module_hash must be a string and epochs an integer")
    return row


def parse_record(data: bytes) -> NB101Record:
    """Decode one record's data (JSON + base64 protobuf); raises :class:`ValueError` if malformed."""
    h, epochs, raw_adj, raw_ops, raw_metrics = _split_row(data)
    matrix, ops = _parse_raw_spec(raw_adj, raw_ops)
    metrics = decode_model_metrics(base64.b64decode(raw_metrics, validate=True))
    return NB101Record(h, epochs, matrix, ops, metrics)


def encode_record_data(rec: NB101Record) -> bytes:
    """The JSON record data of the official file for ``rec`` (inverse of :func:`parse_record`)."""
    m = np.asarray(rec.matrix, dtype=np.uint8)
    row = [rec.module_hash, int(rec.epochs), "".join(str(int(v)) for v in m.ravel()), ",".join(rec.ops),
           base64.b64encode(encode_model_metrics(rec.metrics)).decode("ascii")]
    return json.dumps(row).encode("utf-8")


def write_nb101_tfrecord(path: str | os.PathLike, records: Iterable[NB101Record]) -> Path:
    """Write records in the official TFRecord layout (for tests and small hand-made files)."""
    return write_tfrecords(path, (encode_record_data(r) for r in records))


def iter_nb101_tfrecord(path: str | os.PathLike, progress: bool = False) -> Iterator[tuple[int, NB101Record]]:
    """Yield ``(byte offset, record)`` for every record of an official file, streaming it.

    Raises:
        DataError: a corrupt, truncated or malformed record, naming its byte offset.
    """
    for offset, data in iter_tfrecords(path, progress=progress):
        try:
            rec = parse_record(data)
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as e:
            raise DataError(f"{path}: record at byte offset {offset} is malformed: {e}") from None
        yield offset, rec


# --- the table ------------------------------------------------------------------------------------------------------

@dataclass
class NB101Table:
    """NAS-Bench-101 cells: row ``i`` is the pruned cell ``adjs[i][:n, :n]`` / ``op_ids[i][:n]`` (ids of
    :data:`~nnformer.spaces.nb101.NODE_OPS`, ``-1`` padding) with official hash ``hashes[i]`` and ``labels[name][i]``.
    """

    hashes: np.ndarray
    adjs: np.ndarray
    op_ids: np.ndarray
    labels: dict[str, np.ndarray]
    source: str = ""
    _graphs: list[ArchGraph] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.hashes)

    def label(self, name: str) -> np.ndarray:
        """A label column (``val`` or ``test``), fractions in [0, 1]."""
        if name not in self.labels:
            raise DataError(f"unknown NAS-Bench-101 label {name!r}; known: {', '.join(self.labels)}")
        return self.labels[name]

    def spec(self, i: int) -> tuple[np.ndarray, list[str]]:
        """The pruned ``(matrix, op names)`` of row ``i``."""
        n = int((self.op_ids[i] >= 0).sum())
        return self.adjs[i, :n, :n].copy(), [NODE_OPS[k] for k in self.op_ids[i, :n]]

    @property
    def graphs(self) -> list[ArchGraph]:
        if self._graphs is None:
            self._graphs = [ArchGraph(ops, a) for a, ops in map(self.spec, range(len(self)))]
        return self._graphs

    def index_of(self, module_hash: str) -> int:
        """Row of a module hash; raises :class:`DataError` if the table has no such cell."""
        if not hasattr(self, "_index"):
            self._index = {h: i for i, h in enumerate(self.hashes)}
        try:
            return self._index[module_hash]
        except KeyError:
            raise DataError(f"{module_hash!r} is not a module hash in the NAS-Bench-101 table") from None


class _Builder:
    """Collects validated rows; every problem is reported with the entry it came from."""

    def __init__(self, where: str):
        self.where = where
        self.hashes: list[str] = []
        self.specs: list[tuple[np.ndarray, list[str]]] = []
        self.values: dict[str, list[float]] = {k: [] for k in LABELS}

    def add(self, entry: str, matrix, ops, labels: dict[str, float], stored_hash: str | None = None) -> None:
        try:
            a, ops = canonical_spec(matrix, ops)
            h = canonical_hash(a, ops)
        except SpecError as e:
            raise DataError(f"{self.where}: {entry}: {e}") from None
        if stored_hash is not None and stored_hash != h:
            raise DataError(f"{self.where}: {entry}: stored module hash {stored_hash} does not match its cell "
                            f"(computed {h})")
        for k in LABELS:
            v = labels[k]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v):
                raise DataError(f"{self.where}: {entry}: {k} accuracy is {v!r}, not a finite number")
            if not 0.0 <= v <= 1.0:
                raise DataError(f"{self.where}: {entry}: {k} accuracy {v!r} is outside [0, 1] "
                                f"(NAS-Bench-101 accuracies are fractions)")
            self.values[k].append(float(v))
        self.hashes.append(h)
        self.specs.append((a, ops))

    def table(self, source: str) -> NB101Table:
        n = len(self.hashes)
        if n == 0:
            raise DataError(f"{self.where}: no NAS-Bench-101 cells found")
        adjs = np.zeros((n, MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
        op_ids = np.full((n, MAX_VERTICES), -1, dtype=np.int8)
        for i, (a, ops) in enumerate(self.specs):
            k = len(ops)
            adjs[i, :k, :k] = a
            op_ids[i, :k] = [_OP_ID[o] for o in ops]
        labels = {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()}
        return NB101Table(np.asarray(self.hashes, dtype="U32"), adjs, op_ids, labels, source)


# --- readers --------------------------------------------------------------------------------------------------------

def read_nb101_tfrecord(path: str | os.PathLike, progress: bool = False, verify_hashes: bool = True,
                        repeats: int | None = REPEATS) -> NB101Table:
    """Read an official NAS-Bench-101 TFRecord file (only108 or full) into a table.

    Args:
        path: the ``.tfrecord`` file.
        progress: show a tqdm progress bar (bytes read).
        verify_hashes: recompute each cell's module hash and refuse a file whose stored hash differs (about
            0.2 ms per cell; the result is cached by :func:`load_nb101`).
        repeats: required number of 108-epoch records per cell (3 in the official files); ``None`` accepts any
            number >= 1. Checking it catches a file cut exactly at a record boundary, which framing cannot.

    Raises:
        DataError: corrupt / truncated / malformed record (naming its byte offset), a hash whose records disagree
            on the cell, a cell without 108-epoch records or with a wrong repeat count, a NaN label.
    """
    path = Path(path)
    # hash -> [offset of first record, raw adjacency, raw ops, val sum, test sum, count of 108-epoch records]
    cells: dict[str, list] = {}
    for offset, data in iter_tfrecords(path, progress=progress):
        try:
            h, epochs, raw_adj, raw_ops, raw_metrics = _split_row(data)
            cell = cells.get(h)
            if cell is None:
                _parse_raw_spec(raw_adj, raw_ops)  # fail early, at the record that holds the problem
                cell = cells[h] = [offset, raw_adj, raw_ops, 0.0, 0.0, 0]
            elif cell[1] != raw_adj or cell[2] != raw_ops:
                raise ValueError(f"cell differs from the one of the record at byte offset {cell[0]} with the "
                                 f"same hash {h}")
            if epochs != LABEL_EPOCHS:
                continue
            metrics = decode_model_metrics(base64.b64decode(raw_metrics, validate=True))
            if not metrics.evaluation_data:
                raise ValueError("ModelMetrics has no evaluation_data")
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as e:
            raise DataError(f"{path}: record at byte offset {offset} is malformed: {e}") from None
        final = metrics.evaluation_data[-1]  # end of training; [0] is at initialisation, [1] halfway
        for k, v in (("validation", final.validation_accuracy), ("test", final.test_accuracy)):
            if not math.isfinite(v):
                raise DataError(f"{path}: record at byte offset {offset} (hash {h}): final {k} accuracy is {v}")
        cell[3] += final.validation_accuracy
        cell[4] += final.test_accuracy
        cell[5] += 1
    b = _Builder(str(path))
    for h, (offset, raw_adj, raw_ops, val, test, count) in cells.items():
        entry = f"hash {h} (first record at byte offset {offset})"
        if count == 0:
            raise DataError(f"{path}: {entry} has no {LABEL_EPOCHS}-epoch record")
        if repeats is not None and count != repeats:
            raise DataError(f"{path}: {entry} has {count} records at {LABEL_EPOCHS} epochs, expected {repeats}")
        matrix, ops = _parse_raw_spec(raw_adj, raw_ops)
        b.add(entry, matrix, ops, {"val": val / count, "test": test / count}, h if verify_hashes else None)
    return b.table(f"tfrecord:{path.name}")


def _load_json(path: Path):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"cannot parse {path} as JSON: {e}") from None


def _ops_from_json(ops) -> list:
    """Op names from names or NAR-Former ids (a bad element is left for the spec check to report)."""
    if not isinstance(ops, list):
        return ops
    out = []
    for o in ops:
        if isinstance(o, int) and not isinstance(o, bool) and 0 <= o < len(NODE_OPS):
            out.append(NODE_OPS[o])
        else:
            out.append(o)
    return out


def read_nb101_json(path: str | os.PathLike) -> NB101Table:
    """Read NAR-Former's ``nasbench101.json``: ``{index: {module_adjacency, module_operations,
    validation_accuracy, test_accuracy, ...}}`` (a JSON list is accepted too, index = position).

    Rows are in index order. Ops may be names or ids of :data:`~nnformer.spaces.nb101.NODE_OPS` (input 0,
    conv1x1 1, conv3x3 2, maxpool 3, output 4: the NAR-Former ids, not the order the module hash uses).
    """
    path = Path(path)
    data = _load_json(path)
    if isinstance(data, list):
        items = list(enumerate(data))
    elif isinstance(data, dict):
        items = []
        for k, v in data.items():
            try:
                items.append((int(k), v))
            except ValueError:
                raise DataError(f"{path}: key {k!r} is not an integer index") from None
        items.sort(key=lambda kv: kv[0])
        dup = next((a for (a, _), (b, _) in zip(items, items[1:]) if a == b), None)
        if dup is not None:
            raise DataError(f"{path}: index {dup} appears twice")
    else:
        raise DataError(f"{path}: expected a JSON object {{index: entry}}, got {type(data).__name__}")
    b = _Builder(str(path))
    for i, e in items:
        entry = f"entry {i}"
        if not isinstance(e, dict):
            raise DataError(f"{path}: {entry} is a {type(e).__name__}, not an object")
        missing = [k for k in ("module_adjacency", "module_operations", "validation_accuracy", "test_accuracy")
                   if k not in e]
        if missing:
            raise DataError(f"{path}: {entry} lacks {', '.join(missing)}")
        b.add(entry, e["module_adjacency"], _ops_from_json(e["module_operations"]),
              {"val": e["validation_accuracy"], "test": e["test_accuracy"]})
    return b.table(f"json:{path.name}")


def read_nb101_subset(path: str | os.PathLike) -> NB101Table:
    """Read a ``[[adjacency, op names], accuracy]`` list (the 2,500-cell subset format).

    The single accuracy is stored as both ``val`` and ``test`` (see the module docstring: upstream does not say
    which one it is).
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of [[adjacency, ops], accuracy], got {type(data).__name__}")
    b = _Builder(str(path))
    for i, row in enumerate(data):
        entry = f"entry {i}"
        if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], list) and len(row[0]) == 2):
            raise DataError(f"{path}: {entry} is not [[adjacency, ops], accuracy]")
        (matrix, ops), acc = row
        b.add(entry, matrix, ops, {"val": acc, "test": acc})
    return b.table(f"subset:{path.name}")


# --- source selection and cache -------------------------------------------------------------------------------------

def _find(root: Path, name: str) -> Path | None:
    for p in (root / "nasbench101" / name, root / name):
        if p.is_file():
            return p
    return None


def find_nb101_source(data_dir=None, source: str | os.PathLike | None = None) -> tuple[str, Path | None]:
    """``(kind, path)`` of the NAS-Bench-101 source to read.

    ``source=None`` (or ``"auto"``) picks, in the data directory (or its ``nasbench101/`` folder), the official
    tfrecord (``nasbench_only108`` before ``nasbench_full``), else ``nasbench101.json``, else the registered 2,500-cell
    subset. ``"tfrecord"``, ``"json"`` or ``"subset"`` demands that kind; any other value is a file path, its kind
    told by its suffix and, for ``.json``, by whether it holds an object (NAR-Former format) or a list (subset
    format). Kinds returned: ``tfrecord``, ``json``, ``subset`` (the registered file; its path is ``None`` here, it is
    resolved and its sha256 checked by :func:`verified_path`) and ``subset-file`` (a subset-format file at a path).
    """
    from .registry import resolve_data_dir

    root = resolve_data_dir(data_dir)
    if source is None or source == "auto":
        for name in TFRECORD_NAMES:
            if (p := _find(root, name)) is not None:
                return "tfrecord", p
        if (p := _find(root, JSON_NAME)) is not None:
            return "json", p
        return "subset", None
    if source == "tfrecord":
        for name in TFRECORD_NAMES:
            if (p := _find(root, name)) is not None:
                return "tfrecord", p
        raise DataError(f"no {' or '.join(TFRECORD_NAMES)} in {root} or {root / 'nasbench101'}")
    if source == "json":
        if (p := _find(root, JSON_NAME)) is not None:
            return "json", p
        raise DataError(f"no {JSON_NAME} in {root} or {root / 'nasbench101'}")
    if source == "subset":
        return "subset", None
    p = Path(source).expanduser()
    if not p.is_file():
        raise DataError(f"NAS-Bench-101 source {str(source)!r} is neither one of {', '.join(KINDS)} nor a file")
    if p.suffix == ".tfrecord":
        return "tfrecord", p
    if p.suffix == ".json":
        with open(p, "rb") as f:
            head = f.read(4096).lstrip()[:1]
        if head == b"{":
            return "json", p
        if head == b"[":
            return "subset-file", p
        raise DataError(f"{p} does not start with a JSON object or list")
    raise DataError(f"cannot tell the format of {p}: expected a .tfrecord or .json file")


def _build(kind: str, path: Path | None, data_dir, progress: bool) -> NB101Table:
    if kind == "tfrecord":
        return read_nb101_tfrecord(path, progress=progress)
    if kind == "json":
        return read_nb101_json(path)
    if kind == "subset-file":
        return read_nb101_subset(path)
    return read_nb101_subset(verified_path(SUBSET, data_dir))


def _cache_path(kind: str, digest: str) -> Path:
    key = hashlib.sha256(f"nb101-v{FORMAT_VERSION}-{kind}-{digest}".encode()).hexdigest()[:16]
    return processed_dir() / f"nb101_{key}.npz"


def load_nb101(data_dir=None, source: str | os.PathLike | None = None, cache: bool = True,
               progress: bool = False) -> NB101Table:
    """The NAS-Bench-101 table from the best available source (see :func:`find_nb101_source`), cached as ``.npz``.

    The source file is hashed on every use and the cache key is that sha256, so an edited file is re-converted,
    never served stale; the registered subset must also match its registered sha256.
    """
    kind, path = find_nb101_source(data_dir, source)
    if not cache:
        return _build(kind, path, data_dir, progress)
    digest = sha256_of(verified_path(SUBSET, data_dir) if path is None else path)  # checked on every use
    cpath = _cache_path(kind, digest)
    if cpath.is_file():
        try:
            with np.load(cpath, allow_pickle=False) as z:
                return NB101Table(z["hashes"], z["adjs"], z["op_ids"], {k: z[k] for k in LABELS}, str(z["source"]))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt from the source
    table = _build(kind, path, data_dir, progress)
    with atomic_path(cpath, ".npz") as tmp:
        np.savez(tmp, hashes=table.hashes, adjs=table.adjs, op_ids=table.op_ids, source=np.asarray(table.source),
                 **table.labels)
    return table

