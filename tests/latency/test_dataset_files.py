"""A latency dataset read to train or evaluate on is checked line by line: a partial last line or an invalid row is an
error naming the file, line and field; the sweeps' own append-only stores still drop a torn tail to resume."""

import json
import math
import shutil

import pytest

pytest.importorskip("onnx")

from nnformer.cli import main  # noqa: E402
from nnformer.errors import DataError  # noqa: E402
from nnformer.io import JsonlAppender, read_jsonl  # noqa: E402
from nnformer.latency.dataset import load_training_set  # noqa: E402
from nnformer.latency.profiler import completed_ids, latency_row_problem  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def dataset(small_dataset, tmp_path):
    """A copy of the twelve-model dataset, free to damage."""
    return shutil.copytree(small_dataset, tmp_path / "ds")


def rows(path):
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def write_rows(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_read_jsonl_drops_a_torn_tail_only_where_a_store_resumes(tmp_path):
    store = tmp_path / "runs.jsonl"
    with JsonlAppender(store) as f:
        f.write({"a": 1})
        f.write({"a": 2})
    with open(store, "a") as f:
        f.write('{"a": 3, "b"')  # killed mid-line
    assert read_jsonl(store) == [{"a": 1}, {"a": 2}]  # a sweep's store resumes without the torn line
    with pytest.raises(DataError, match=r"runs.jsonl: line 3, the last, is cut short"):
        read_jsonl(store, strict=True)
    with JsonlAppender(store) as f:  # the next append cuts it
        f.write({"a": 3})
    assert read_jsonl(store, strict=True) == [{"a": 1}, {"a": 2}, {"a": 3}]
    store.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"runs.jsonl: line 2 is not a JSON object"):
        read_jsonl(store, strict=True)


def test_train_refuses_a_dataset_whose_last_line_is_cut(dataset, tmp_path, capsys):
    lat = dataset / "latency.jsonl"
    n = len(lat.read_text().splitlines())
    with open(lat, "a") as f:
        f.write('{"id": "resnet-00006", "family": "resnet", "index": 6, "status": "ok", "latency_ms": 1')
    out = tmp_path / "run"
    assert main(["train", "--task", "latency", "--data", str(dataset), "--out", str(out), "--quiet", "--set",
                 "steps=2", "--set", "n_layers=1", "--set", "dim=16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nnformer: error: ") and "Traceback" not in err
    assert f"{lat}: line {n + 1}, the last, is cut short" in err and "nnformer profile" in err
    assert not out.exists()
    with pytest.raises(DataError, match=f"line {n + 1}"):
        load_training_set(dataset)


@pytest.mark.parametrize("change, field", [
    ({"latency_ms": math.nan}, "latency_ms"),
    ({"latency_ms": -3.0}, "latency_ms"),
    ({"latency_ms": 0}, "latency_ms"),
    ({"latency_ms": "12.5"}, "latency_ms"),
    ({"latency_ms": None}, "latency_ms"),
    ({"family": None}, "family"),
    ({"index": "3"}, "index"),
    ({"index": -1}, "index"),
    ({"status": "done"}, "status"),
    ({"spread": math.inf}, "spread"),
    ({"input_shape": [1, 3, 0, 96]}, "input_shape"),
    ({"measured_at": "yesterday"}, "measured_at"),
])
def test_an_invalid_row_is_named_by_file_line_and_field(dataset, change, field):
    lat = dataset / "latency.jsonl"
    recs = rows(lat)
    recs[4] = {**recs[4], **{k: v for k, v in change.items() if v is not None}}
    for k in (k for k, v in change.items() if v is None):
        del recs[4][k]
    write_rows(lat, recs)
    with pytest.raises(DataError, match=rf"latency.jsonl: line 5: field '{field}' is"):
        load_training_set(dataset)


def test_a_measured_model_without_its_graph_or_with_a_broken_one_is_refused(dataset):
    lat, graphs = dataset / "latency.jsonl", dataset / "graphs.jsonl"
    recs, gs = rows(lat), rows(graphs)
    lost = recs[2]["id"]
    write_rows(graphs, [g for g in gs if g["id"] != lost])
    with pytest.raises(DataError, match=f"latency.jsonl: line 3: model {lost} has no graph record"):
        load_training_set(dataset)
    k = next(i for i, g in enumerate(gs) if g["id"] == lost)
    gs[k] = {**gs[k], "graph": {"format": "something else"}}
    write_rows(graphs, gs)
    with pytest.raises(DataError, match=f"graphs.jsonl: line {k + 1}: the graph record of {lost} is invalid"):
        load_training_set(dataset)


def _no_key(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize("change, field", [
    (lambda g: _no_key(g, "features"), "graph.features' is missing"),
    (lambda g: {**g, "features": [row[:3] for row in g["features"]]}, "graph.features' has 3 values a node"),
    (lambda g: {**g, "features": [[] for _ in g["features"]]}, "graph.features' has 0 values a node"),
    (lambda g: _no_key(g, "static"), "graph.static' is missing or not an object"),
    (lambda g: {**g, "static": []}, "graph.static' is missing or not an object"),
    (lambda g: {**g, "static": _no_key(g["static"], "flops")}, "graph.static.flops' is missing"),
    (lambda g: {**g, "static": {**g["static"], "params": -5.0}}, "graph.static.params' is not a finite number"),
    (lambda g: {**g, "static": {**g["static"], "batch": "1"}}, "graph.static.batch' is not a finite number"),
    (lambda g: {**g, "static": {**g["static"], "num_ops": True}}, "graph.static.num_ops' is not a finite number"),
    (lambda g: {**g, "static": {**g["static"], "memory_access": math.inf}},
     "graph.static.memory_access' is not a finite number"),
    (lambda g: {**g, "static": {**g["static"], "flops": 10**400}}, "graph.static.flops' is not a finite number"),
])
def test_a_graph_record_without_the_onnx_features_is_named_by_file_line_and_field(dataset, change, field):
    graphs = dataset / "graphs.jsonl"
    gs = rows(graphs)
    gs[3] = {**gs[3], "graph": change(gs[3]["graph"])}
    write_rows(graphs, gs)
    with pytest.raises(DataError, match=rf"graphs.jsonl: line 4: the graph record of {gs[3]['id']} is invalid: "
                                        rf"field '{field}"):
        load_training_set(dataset)


def test_a_graph_record_without_features_is_one_error_line_not_a_traceback(dataset, tmp_path, capsys):
    graphs = dataset / "graphs.jsonl"
    gs = rows(graphs)
    gs[0] = {**gs[0], "graph": _no_key(gs[0]["graph"], "features")}
    write_rows(graphs, gs)
    out = tmp_path / "run"
    assert main(["train", "--task", "latency", "--data", str(dataset), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nnformer: error: ") and "Traceback" not in err
    assert f"{graphs}: line 1: the graph record of {gs[0]['id']} is invalid: field 'graph.features'" in err
    assert not out.exists()


def test_graphs_of_different_feature_widths_are_a_data_error(dataset):
    from nnformer import Predictor
    from nnformer.batching import EncodedGraphs
    from nnformer.errors import FeatureWidthError
    from nnformer.graph import ArchGraph

    _, graphs, ms, _ = load_training_set(dataset)
    bare = ArchGraph(graphs[0].ops, graphs[0].adj, None, graphs[0].depth, graphs[0].graph_features)
    with pytest.raises(DataError, match=r"same number of node features, found \[0, 17\]"):
        Predictor(task="latency", progress=False).fit([bare, *graphs[1:]], ms)
    with pytest.raises(ValueError, match="same number of node features"):  # still a ValueError, as it was
        EncodedGraphs([bare, graphs[1]])
    assert issubclass(FeatureWidthError, DataError) and issubclass(FeatureWidthError, ValueError)


@pytest.mark.parametrize("content", [
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff\xff\xff",  # a gzip header, then no valid block: zlib.error
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",  # a header only: EOFError
    b"not gzip at all",  # gzip.BadGzipFile
])
def test_a_damaged_gz_graphs_file_is_a_data_error_naming_it(dataset, content, tmp_path, capsys):
    (dataset / "graphs.jsonl").unlink()
    gz = dataset / "graphs.jsonl.gz"
    gz.write_bytes(content)
    with pytest.raises(DataError, match=rf"cannot read {gz}: "):
        load_training_set(dataset)
    assert main(["train", "--task", "latency", "--data", str(dataset), "--out", str(tmp_path / "run"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"nnformer: error: cannot read {gz}: ")


def test_reference_timings_are_checked_when_they_correct_the_labels(dataset):
    ref = dataset / "reference.jsonl"
    good = {"latency_ms": 1.0, "measured_at": "2026-01-01T00:00:00"}
    write_rows(ref, [good, {**good, "measured_at": "2026-01-01T01:00:00"}])
    assert len(load_training_set(dataset, correct_drift=True)[2]) == 12
    write_rows(ref, [good, {**good, "latency_ms": math.nan}])
    with pytest.raises(DataError, match="reference.jsonl: line 2: field 'latency_ms' is nan"):
        load_training_set(dataset, correct_drift=True)
    write_rows(ref, [good, {"latency_ms": 1.0}])
    with pytest.raises(DataError, match="reference.jsonl: line 2: field 'measured_at' is missing"):
        load_training_set(dataset, correct_drift=True)
    ref.write_text(json.dumps(good) + "\n" + '{"latency_ms": 1.')
    with pytest.raises(DataError, match="reference.jsonl: line 2, the last, is cut short"):
        load_training_set(dataset, correct_drift=True)


def test_only_valid_rows_count_as_done_when_a_profile_resumes():
    head = {"family": "resnet", "status": "ok", "latency_ms": 2.5}
    recs = [{**head, "id": "resnet-00000", "index": 0},
            {**head, "id": "resnet-00001", "index": 1, "latency_ms": math.nan},
            {**head, "id": "resnet-00002", "index": 2, "latency_ms": -1.0},
            {**head, "id": "resnet-00003", "index": 3, "latency_ms": 0.0},
            {"id": "resnet-00004", "family": "resnet", "index": 4, "status": "ok"},  # no latency
            {"id": "resnet-00005", "family": "resnet", "index": 5, "status": "error", "stage": "export",
             "error": "no ONNX export"},  # a failure: recorded once, not retried
            {"id": "resnet-00006", "index": 6, "status": "ok", "latency_ms": 1.0},  # no family
            [1, 2]]
    assert completed_ids(recs) == {"resnet-00000", "resnet-00005"}
    assert latency_row_problem(recs[0]) is None and "latency_ms" in latency_row_problem(recs[1])
