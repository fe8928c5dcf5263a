import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnformer.data import nb101, tfrecord
from nnformer.data import protowire as pw
from nnformer.data.nb101 import (SUBSET, EvaluationData, ModelMetrics, NB101Record, decode_model_metrics,
                                 encode_model_metrics, encode_record_data, find_nb101_source, iter_nb101_tfrecord,
                                 load_nb101, read_nb101_json, read_nb101_subset, read_nb101_tfrecord,
                                 write_nb101_tfrecord)
from nnformer.data.registry import processed_dir
from nnformer.data.tfrecord import (CRC32C_TABLE, crc32c, crc32c_many, encode_record, iter_tfrecords, mask_crc,
                                    write_tfrecords)
from nnformer.errors import DataError
from nnformer.spaces.nb101 import NODE_OPS, module_hash, spec_to_graph

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
# the first cell of the official benchmark and its official hash (see test_nb101_space.py)
FIRST = ([[0, 1, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 1, 0],
          [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
         ["input", C3, MP, C3, C3, C1, "output"])
FIRST_HASH = "00005c142e6f48ac74fdcf73e3439874"
INCEPTION_STORED = ([[0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1],
                     [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
                    ["input", C3, C1, MP, C3, C3, "output"])
SMALL = ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"])
CELLS = [FIRST, INCEPTION_STORED, SMALL]


# --- CRC32C and TFRecord framing -----------------------------------------------------------------------------------

def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    assert CRC32C_TABLE[1] == 0xF26B8303
    assert crc32c(b"56789", crc32c(b"1234")) == crc32c(b"123456789")
    assert mask_crc(0) == 0xA282EAD8
    assert mask_crc(1 << 15) == (1 + 0xA282EAD8)  # rotate right by 15
    # Snappy framing masks CRC32C the same way; this frame checksum was pinned against Go's snappy encoder
    assert mask_crc(crc32c(b"hello frp hello frp hello frp hello frp")) == 0x8FA5EE8F


def test_crc32c_many_matches_scalar_across_groups():
    rng = np.random.default_rng(0)
    chunks = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 600, 300)]
    chunks += [b"", b"\x00" * 5000, b"x"]  # a long string alone in its group, and empty strings
    assert crc32c_many(chunks).tolist() == [crc32c(c) for c in chunks]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=40))
def test_crc32c_many_property(chunks):
    assert crc32c_many(chunks).tolist() == [crc32c(c) for c in chunks]


def test_record_framing_layout():
    rec = encode_record(b"abc")
    assert rec[:8] == (3).to_bytes(8, "little")
    assert int.from_bytes(rec[8:12], "little") == mask_crc(crc32c(rec[:8]))
    assert rec[12:15] == b"abc"
    assert int.from_bytes(rec[15:], "little") == mask_crc(crc32c(b"abc"))


def test_tfrecord_round_trip_across_chunk_boundaries(tmp_path, monkeypatch):
    datas = [bytes([i % 256]) * (i * 7) for i in range(40)]
    path = write_tfrecords(tmp_path / "x.tfrecord", datas)
    expected_offsets = np.cumsum([0] + [16 + len(d) for d in datas[:-1]]).tolist()
    for chunk in (1 << 22, 5, 37, 300):  # records larger and smaller than the read step
        monkeypatch.setattr(tfrecord, "_CHUNK", chunk)
        got = list(iter_tfrecords(path))
        assert [d for _, d in got] == datas
        assert [o for o, _ in got] == expected_offsets


# --- protobuf wire format --------------------------------------------------------------------------------------------

def test_varint_examples_from_the_protobuf_docs():
    assert pw.encode_varint(1) == b"\x01"
    assert pw.encode_varint(300) == b"\xac\x02"
    assert pw.encode_field(1, pw.VARINT, 150) == b"\x08\x96\x01"
    assert pw.encode_varint(-1) == b"\xff" * 9 + b"\x01"
    assert pw.to_signed64(pw.decode_varint(pw.encode_varint(-5), 0)[0]) == -5


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(v):
    enc = pw.encode_varint(v)
    assert pw.decode_varint(enc + b"\x07", 0) == (v, len(enc))


@pytest.mark.parametrize("buf, message", [
    (b"\x96", "truncated varint"),
    (b"\xff" * 11, "longer than 10 bytes"),
    (b"\x09\x00\x00", "truncated"),  # field 1, I64, only 2 of 8 bytes
    (b"\x0a\x05ab", "truncated"),  # field 1, LEN 5, 2 bytes
    (b"\x0b", "wire type 3"),  # a group
    (b"\x00\x01", "field number 0"),
])
def test_malformed_wire_data(buf, message):
    with pytest.raises(ValueError, match=message):
        list(pw.iter_fields(buf))


def _metrics(val, test, half=(0.5, 0.4), params=8555530):
    return ModelMetrics([EvaluationData(0.0, 0.0, 0.1, 0.1, 0.1),
                         EvaluationData(54.0, 800.0, 0.9, *half, ""),
                         EvaluationData(108.0, 1700.5, 1.0, val, test, "/tmp/model.ckpt-1000")],
                        trainable_parameters=params, total_time=1768.78)


def test_model_metrics_round_trip_and_field_numbers():
    m = _metrics(0.9264, 0.9206)
    raw = encode_model_metrics(m)
    assert decode_model_metrics(raw) == m
    # field 2 (trainable_parameters) is an int32 varint: key 0x10
    assert pw.encode_field(2, pw.VARINT, 8555530) in raw
    # unknown fields are skipped; a double in field 2 is accepted too
    extra = raw + pw.encode_field(9, pw.VARINT, 5) + pw.encode_field(10, pw.LEN, b"zz")
    assert decode_model_metrics(extra) == m
    assert decode_model_metrics(pw.encode_field(2, pw.I64, 123.0)).trainable_parameters == 123


def test_model_metrics_wrong_wire_type_is_refused():
    bad_eval = pw.encode_field(1, pw.LEN, pw.encode_field(4, pw.VARINT, 1))  # validation_accuracy as a varint
    with pytest.raises(ValueError, match="field 4 has wire type 0"):
        decode_model_metrics(bad_eval)


# --- official TFRecord files ---------------------------------------------------------------------------------------

VALS = {0: (0.92, 0.93, 0.94), 1: (0.80, 0.81, 0.85), 2: (0.50, 0.55, 0.60)}
TESTS = {0: (0.91, 0.92, 0.90), 1: (0.79, 0.80, 0.90), 2: (0.40, 0.45, 0.50)}


def _records(full=False):
    """3 cells x 3 repeats at 108 epochs (interleaved), plus 4-epoch runs for the `full` layout."""
    recs = []
    for rep in range(3):
        for c, (m, ops) in enumerate(CELLS):
            if full:
                recs.append(NB101Record(module_hash(m, ops), 4, np.array(m), ops, _metrics(0.3, 0.3)))
            recs.append(NB101Record(module_hash(m, ops), 108, np.array(m), ops,
                                    _metrics(VALS[c][rep], TESTS[c][rep])))
    return recs


def _offsets(recs):
    sizes = [len(encode_record(encode_record_data(r))) for r in recs]
    return np.cumsum([0] + sizes[:-1]).tolist()


@pytest.mark.parametrize("full", [False, True])
def test_tfrecord_labels_are_three_repeat_means(tmp_path, full):
    path = write_nb101_tfrecord(tmp_path / "nb.tfrecord", _records(full))
    t = read_nb101_tfrecord(path, progress=full)
    assert len(t) == 3
    assert t.hashes[0] == FIRST_HASH
    assert t.hashes.tolist() == [module_hash(m, o) for m, o in CELLS]
    np.testing.assert_allclose(t.label("val"), [np.mean(VALS[c]) for c in range(3)], rtol=0, atol=1e-12)
    np.testing.assert_allclose(t.label("test"), [np.mean(TESTS[c]) for c in range(3)], rtol=0, atol=1e-12)
    for i, (m, ops) in enumerate(CELLS):
        assert t.graphs[i] == spec_to_graph(m, ops)
        assert t.index_of(module_hash(m, ops)) == i
    with pytest.raises(DataError, match="not a module hash"):
        t.index_of("f" * 32)
    assert t.source == "tfrecord:nb.tfrecord"


def test_iter_records_round_trip(tmp_path):
    recs = _records()
    path = write_nb101_tfrecord(tmp_path / "nb.tfrecord", recs)
    got = list(iter_nb101_tfrecord(path))
    assert [o for o, _ in got] == _offsets(recs)
    for (_, r), e in zip(got, recs):
        assert (r.module_hash, r.epochs, r.ops, r.metrics) == (e.module_hash, e.epochs, e.ops, e.metrics)
        assert np.array_equal(r.matrix, e.matrix)


@pytest.mark.parametrize("record, where, what", [
    (0, 3, "length CRC32C"),  # a byte of the length
    (4, 9, "length CRC32C"),  # a byte of the length's CRC
    (4, 40, "data CRC32C"),  # a byte of the data
    (8, -2, "data CRC32C"),  # a byte of the data's CRC
])
def test_flipped_byte_names_the_record_offset(tmp_path, record, where, what):
    recs = _records()
    path = write_nb101_tfrecord(tmp_path / "nb.tfrecord", recs)
    offsets = _offsets(recs)
    raw = bytearray(path.read_bytes())
    end = offsets[record + 1] if record + 1 < len(offsets) else len(raw)
    raw[(offsets[record] + where) if where >= 0 else (end + where)] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=f"record at byte offset {offsets[record]}: {what} mismatch"):
        read_nb101_tfrecord(path)


@pytest.mark.parametrize("cut", [1, 4, 30, 200])
def test_truncated_file_names_the_record_offset(tmp_path, cut):
    recs = _records()
    path = write_nb101_tfrecord(tmp_path / "nb.tfrecord", recs)
    last = _offsets(recs)[-1]
    raw = path.read_bytes()
    keep = len(raw) - cut if cut < 200 else last + 5  # inside the data/footer, or inside the 12-byte header
    path.write_bytes(raw[:keep])
    with pytest.raises(DataError, match=f"record at byte offset {last} is truncated"):
        read_nb101_tfrecord(path)


def test_file_cut_at_a_record_boundary_fails_the_repeat_count(tmp_path):
    recs = _records()[:-1]  # the third repeat of the last cell is missing
    path = write_nb101_tfrecord(tmp_path / "nb.tfrecord", recs)
    with pytest.raises(DataError, match=f"hash {module_hash(*SMALL)} .* has 2 records at 108 epochs, expected 3"):
        read_nb101_tfrecord(path)
    assert len(read_nb101_tfrecord(path, repeats=None)) == 3


def _write_with(tmp_path, k, rec=None, data=None):
    recs = _records()
    datas = [encode_record_data(r) for r in recs]
    datas[k] = data if data is not None else encode_record_data(rec)
    path = write_tfrecords(tmp_path / "nb.tfrecord", datas)
    return path, _offsets(recs)[k]


def test_malformed_record_names_its_offset(tmp_path):
    path, off = _write_with(tmp_path, 2, data=b'["abc", 108, "0110", "input,output"]')
    with pytest.raises(DataError, match=f"record at byte offset {off} is malformed: record is not a JSON list"):
        read_nb101_tfrecord(path)
    path, off = _write_with(tmp_path, 2, data=b'["abc", 108, "01100", "input,output", ""]')
    with pytest.raises(DataError, match=f"byte offset {off} is malformed: raw_adjacency has 5 digits"):
        read_nb101_tfrecord(path)


def test_wrong_stored_hash_is_refused(tmp_path):
    recs = _records()
    for r in recs[1::3]:  # every repeat of INCEPTION_STORED
        r.module_hash = "0" * 32
    path = write_nb101_tfrecord(tmp_path / "nb.tfrecord", recs)
    off = _offsets(recs)[1]
    with pytest.raises(DataError, match=f"hash 0{{32}} \\(first record at byte offset {off}\\): stored module "
                                        f"hash 0{{32}} does not match its cell \\(computed [0-9a-f]{{32}}\\)"):
        read_nb101_tfrecord(path)
    assert read_nb101_tfrecord(path, verify_hashes=False).hashes[1] == module_hash(*INCEPTION_STORED)


def test_nan_accuracy_is_refused(tmp_path):
    rec = _records()[4]
    rec.metrics.evaluation_data[-1].test_accuracy = float("nan")
    path, off = _write_with(tmp_path, 4, rec)
    with pytest.raises(DataError, match=f"byte offset {off} .*final test accuracy is nan"):
        read_nb101_tfrecord(path)


def test_same_hash_with_another_cell_is_refused(tmp_path):
    recs = _records()
    rec = recs[3]  # second repeat of FIRST, claiming FIRST's hash with SMALL's cell
    rec.matrix, rec.ops = np.array(SMALL[0]), SMALL[1]
    path, off = _write_with(tmp_path, 3, rec)
    with pytest.raises(DataError, match=f"byte offset {off} is malformed: cell differs from the one of the record "
                                        f"at byte offset 0"):
        read_nb101_tfrecord(path)


# --- nasbench101.json (NAR-Former / NN-Former) ---------------------------------------------------------------------

def _nar_entry(m, ops, val, test, ids=True):
    return {"module_adjacency": [list(row) for row in m],  # copies: tests mutate entries
            "module_operations": [NODE_OPS.index(o) for o in ops] if ids else list(ops),
            "validation_accuracy": val, "test_accuracy": test, "parameters": 1, "training_time": 2.0}


def test_nar_json_reads_ids_and_names_in_index_order(tmp_path):
    data = {"10": _nar_entry(*SMALL, 0.5, 0.4), "2": _nar_entry(*INCEPTION_STORED, 0.93, 0.92, ids=False),
            "0": _nar_entry(*FIRST, 0.92, 0.91)}
    path = tmp_path / "nasbench101.json"
    path.write_text(json.dumps(data))
    t = read_nb101_json(path)
    assert t.hashes.tolist() == [FIRST_HASH, module_hash(*INCEPTION_STORED), module_hash(*SMALL)]
    assert t.label("val").tolist() == [0.92, 0.93, 0.5]
    assert t.label("test").tolist() == [0.91, 0.92, 0.4]
    assert t.graphs[0] == spec_to_graph(*FIRST)
    # ids are the NAR-Former ones (conv1x1 = 1, conv3x3 = 2), not the hash order
    assert _nar_entry(*FIRST, 0, 0)["module_operations"] == [0, 2, 3, 2, 2, 1, 4]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["1"].update(validation_accuracy=float("nan")), "entry 1: val accuracy is nan"),
    (lambda d: d["0"].update(test_accuracy=93.1), "entry 0: test accuracy 93.1 is outside"),
    (lambda d: d["1"].update(test_accuracy=None), "entry 1: test accuracy is None"),
    (lambda d: d["1"]["module_operations"].__setitem__(1, 7), "entry 1: invalid NAS-Bench-101 spec: op 1 is 7"),
    (lambda d: d["0"]["module_adjacency"][1].__setitem__(0, 1), "entry 0: .*not strictly upper-triangular"),
    (lambda d: d["0"].pop("module_adjacency"), "entry 0 lacks module_adjacency"),
    (lambda d: d.update(x=d.pop("1")), "key 'x' is not an integer index"),
    (lambda d: d.update({"01": d["1"]}), "index 1 appears twice"),
])
def test_nar_json_bad_entry_is_named(tmp_path, mutate, message):
    data = {"0": _nar_entry(*FIRST, 0.92, 0.91), "1": _nar_entry(*SMALL, 0.5, 0.4)}
    mutate(data)
    path = tmp_path / "nasbench101.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        read_nb101_json(path)


# --- the 2,500-cell subset -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nb101_data_dir():
    if not (SHARED_DATA / SUBSET).is_file():
        pytest.skip(f"NAS-Bench-101 subset not found at {SHARED_DATA / SUBSET}")
    return SHARED_DATA


def test_subset_loads_with_provenance_stats(nb101_data_dir):
    t = load_nb101(nb101_data_dir)
    assert t.source == "subset:nasbench1_2500.json"
    assert len(t) == 2500 and len(set(t.hashes.tolist())) == 2500
    val = t.label("val")
    assert np.isfinite(val).all() and 0 < val.min() and val.max() < 1
    assert val.mean() == pytest.approx(0.8948, abs=5e-5)
    assert val.max() == pytest.approx(0.9402, abs=5e-5)
    assert np.array_equal(t.label("test"), val)  # one accuracy, used as both labels
    sizes = np.bincount([g.num_nodes for g in t.graphs], minlength=8)
    assert sizes.tolist() == [0, 0, 0, 0, 0, 12, 374, 2114]
    raw = json.loads((nb101_data_dir / SUBSET).read_text())
    (m, ops), acc = raw[17]
    assert t.hashes[17] == module_hash(m, ops) and val[17] == acc
    with pytest.raises(DataError, match="unknown NAS-Bench-101 label 'cifar10'"):
        t.label("cifar10")


def test_subset_format_bad_entries(tmp_path):
    good = [SMALL, 0.5]
    for rows, message in [([good, [SMALL, float("nan")]], "entry 1: val accuracy is nan"),
                          ([good, [[SMALL[0]], 0.5]], r"entry 1 is not \[\[adjacency, ops\], accuracy\]"),
                          ([[[[[0, 0], [0, 0]], ["input", "output"]], 0.1]], "entry 0: .*not connected"),
                          ({"0": good}, "expected a JSON list")]:
        path = tmp_path / "s.json"
        path.write_text(json.dumps(rows))
        with pytest.raises(DataError, match=message):
            read_nb101_subset(path)
    path.write_text("[[1, 2")
    with pytest.raises(DataError, match="cannot parse .* as JSON"):
        read_nb101_subset(path)


def test_altered_subset_is_refused(nb101_data_dir, tmp_path, monkeypatch):
    (tmp_path / SUBSET).parent.mkdir(parents=True)
    raw = bytearray((nb101_data_dir / SUBSET).read_bytes())
    raw[1000] ^= 1
    (tmp_path / SUBSET).write_bytes(bytes(raw))
    monkeypatch.setenv("NNFORMER_CACHE", str(tmp_path / "cache"))  # no cached table to fall back on
    with pytest.raises(DataError, match="nasbench1_2500.json has sha256 .* altered"):
        load_nb101(tmp_path)


# --- source selection and cache ------------------------------------------------------------------------------------

def test_source_preference_and_cache(nb101_data_dir, tmp_path):
    root = tmp_path / "data"
    (root / "nasbench101").mkdir(parents=True)
    shutil.copy(nb101_data_dir / SUBSET, root / SUBSET)
    assert find_nb101_source(root) == ("subset", None)
    assert len(load_nb101(root)) == 2500

    nar = root / "nasbench101" / "nasbench101.json"
    nar.write_text(json.dumps({"0": _nar_entry(*FIRST, 0.92, 0.91)}))
    assert find_nb101_source(root) == ("json", nar)
    t = load_nb101(root)
    assert (len(t), t.source) == (1, "json:nasbench101.json")

    rec = write_nb101_tfrecord(root / "nasbench_only108.tfrecord", _records())
    assert find_nb101_source(root) == ("tfrecord", rec)
    assert len(load_nb101(root)) == 3
    assert len(load_nb101(root, source="subset")) == 2500  # an explicit kind wins over the preference
    assert len(load_nb101(root, source=nar)) == 1  # a path
    assert load_nb101(root, source=root / SUBSET).source == "subset:nasbench1_2500.json"
    with pytest.raises(DataError, match="neither one of tfrecord, json, subset nor a file"):
        load_nb101(root, source="nb101")
    with pytest.raises(DataError, match="no nasbench_only108.tfrecord or nasbench_full.tfrecord"):
        load_nb101(tmp_path / "empty", source="tfrecord")

    # the cache is keyed on content: an edited file is re-read, a second load of an unchanged one is not
    cached = sorted(processed_dir().glob("nb101_*.npz"))
    assert cached
    nar.write_text(json.dumps({"0": _nar_entry(*FIRST, 0.5, 0.25)}))
    assert load_nb101(root, source="json").label("test").tolist() == [0.25]
    again = load_nb101(root, source="json")
    assert again.label("val").tolist() == [0.5] and again.graphs[0] == spec_to_graph(*FIRST)


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("NNFORMER_CACHE", str(tmp_path / "cache"))
    nar = tmp_path / "nasbench101.json"
    nar.write_text(json.dumps({"0": _nar_entry(*SMALL, 0.5, 0.4)}))
    first = load_nb101(tmp_path)
    (cache_file,) = (tmp_path / "cache").glob("nb101_*.npz")
    cache_file.write_bytes(b"not a zip")
    again = load_nb101(tmp_path)
    assert again.hashes.tolist() == first.hashes.tolist() and again.label("val").tolist() == [0.5]
    assert nb101.LABELS == ("val", "test")
