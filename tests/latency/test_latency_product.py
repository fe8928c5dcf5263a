"""The latency product: predictor directories (safetensors + JSON), the registry of shipped predictors, operator
coverage, prediction intervals, `nnformer predict` on ONNX files and PyTorch modules, `nnformer adapt`."""

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnx")

from nnformer import Predictor, shipped  # noqa: E402
from nnformer.cli import main  # noqa: E402
from nnformer.errors import CheckpointError, NNFormerError  # noqa: E402
from nnformer.latency.coverage import THRESHOLDS, coverage  # noqa: E402
from nnformer.latency.onnx_graph import onnx_to_graph, torch_to_graph, with_static  # noqa: E402
from nnformer.latency.predict import predict_latency  # noqa: E402
from tests.latency.test_latency_models import LSTMNet, export, strip  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"n_layers": 1, "dim": 16, "steps": 4}


class ConvNet(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(width, 4))

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def tiny_latency(small_dataset):
    """A small latency predictor trained on two families of the committed dataset, calibrated on the rest."""
    from nnformer.latency.dataset import load_training_set

    rows, graphs, ms, fam = load_training_set(small_dataset)
    p = Predictor("networks", settings=TINY, task="latency", progress=False).fit(graphs[:8], ms[:8])
    return p.calibrate(graphs[8:], ms[8:]), graphs, ms


def test_predictor_directory_round_trip_and_refusals(tiny_latency, tmp_path):
    p, graphs, _ = tiny_latency
    d = p.save(tmp_path / "pred", card={"name": "mine", "version": "3"})
    assert sorted(f.name for f in d.iterdir()) == ["config.json", "weights.safetensors"]
    q = Predictor.load(d)
    assert np.array_equal(q.predict(graphs), p.predict(graphs))
    assert q.card_["name"] == "mine" and q.header_["interval"] == p.header_["interval"]
    assert q.header_["seen_ops"] == p.header_["seen_ops"] and "onnx:Conv" in q.header_["seen_ops"]
    p.save(d)  # a predictor directory is replaced whole
    assert Predictor.load(d).card_ == {}
    w = d / "weights.safetensors"
    blob = w.read_bytes()
    w.write_bytes(blob[:-7])  # truncated
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        Predictor.load(d)
    w.write_bytes(blob[:100] + bytes([blob[100] ^ 1]) + blob[101:])  # one bit flipped
    with pytest.raises(CheckpointError, match="tampered"):
        Predictor.load(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read"):
        Predictor.load(d)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(NNFormerError, match="not a predictor directory"):
        p.save(other)
    assert (other / "notes.txt").read_text() == "mine" and len(list(other.iterdir())) == 1


def test_conformal_interval_covers_its_calibration_set_and_mc_dropout_is_seeded(tiny_latency):
    p, graphs, ms = tiny_latency
    pred, lo, hi = p.predict_interval(graphs[8:])
    # split conformal: at least ceil((n + 1) * 0.9) of n calibration errors lie within the quantile
    assert np.mean((ms[8:] >= lo) & (ms[8:] <= hi)) >= 0.9
    assert np.allclose(hi / pred, pred / lo) and (hi > lo).all()
    a = p.predict_interval(graphs, method="mc-dropout", samples=8, seed=1)
    b = p.predict_interval(graphs, method="mc-dropout", samples=8, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and (a[2] > a[1]).all()
    assert np.array_equal(p.predict(graphs), a[0])  # dropout is off again afterwards
    fresh = Predictor("networks", settings=TINY, task="latency", progress=False).fit(graphs[:8], ms[:8])
    with pytest.raises(NNFormerError, match="no calibrated interval"):
        fresh.predict_interval(graphs)
    with pytest.raises(NNFormerError, match="unknown interval method"):
        p.predict_interval(graphs, method="bootstrap")


def test_coverage_names_unseen_operators_with_their_share(tiny_latency):
    p, _, _ = tiny_latency
    g, s = onnx_to_graph(strip(export(LSTMNet(), (1, 10, 16))))
    c = coverage(p, with_static(g, s))
    assert "onnx:LSTM" in c.unseen and "onnx:LSTM" not in c.seen
    assert c.unseen_nodes >= 1 and c.unseen_flops_share > THRESHOLDS["flops"] and not c.reliable
    assert "UNRELIABLE" in c.describe() and "LSTM" in c.describe()
    g, s = onnx_to_graph(export(ConvNet(), (1, 3, 32, 32)))
    seen = set(p.header_["seen_ops"])
    c = coverage(p, g)
    real = [o for o in g.ops if o.startswith("onnx:")]  # the virtual input / output nodes are not operators
    assert c.nodes == len(real) < len(g.ops) and "input" not in c.seen + c.unseen
    assert set(c.unseen) == set(real) - seen and c.unseen_nodes == sum(o not in seen for o in real)


def test_registry_lists_loads_and_refuses_tampered_files(tmp_path):
    names = [e.spec for e in shipped.entries()]
    assert f"{shipped.DEFAULT_LATENCY}@1" in names
    entry = shipped.resolve(shipped.DEFAULT_LATENCY)
    assert entry.task == "latency" and entry.metrics["n_test"] > 0 and 0 < entry.metrics["mape"] < 100
    p = shipped.load(entry.spec)
    assert p.task == "latency" and p.vocab_.name == "onnx" and p.header_["interval"]["level"] == 0.9
    size = sum((entry.path() / f).stat().st_size for f in entry.files)
    assert size < 5e6  # small enough to ship inside the package
    with pytest.raises(NNFormerError, match="no shipped predictor named"):
        shipped.resolve("nope")
    with pytest.raises(NNFormerError, match="no version"):
        shipped.resolve(f"{shipped.DEFAULT_LATENCY}@999")
    root = tmp_path / "predictors"
    shutil.copytree(shipped.ROOT, root)
    f = entry.path(root) / "weights.safetensors"
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match="does not match its sha256 in the registry"):
        shipped.load(entry.spec, root)
    f = entry.path(root) / "config.json"
    f.write_text(f.read_text().replace('"level": 0.9', '"level": 0.5'))  # a config edited by hand
    with pytest.raises(CheckpointError, match="config.json does not match"):
        shipped.verify(entry, root)


def test_publish_writes_an_entry_that_loads(tiny_latency, tmp_path):
    p, graphs, _ = tiny_latency
    e = shipped.publish(p, "tiny", "2", description="test", device="here", runtime="ort", data="d",
                         metrics={"mape": 1.0}, root=tmp_path)
    shipped.publish(p, "tiny", "10", description="test", device="here", runtime="ort", data="d",
                     metrics={"mape": 1.0}, root=tmp_path)
    assert [x.spec for x in shipped.entries(tmp_path)] == ["tiny@2", "tiny@10"]  # versions in numeric order
    assert shipped.resolve("tiny", tmp_path).version == "10"
    q = shipped.load(e.spec, tmp_path)
    assert np.array_equal(q.predict(graphs), p.predict(graphs)) and q.card_["version"] == "2"


def test_predict_onnx_with_the_shipped_predictor(tmp_path, capsys):
    from nnformer.latency.families import build, sample

    spec = sample("resnet", seed=7, index=0)  # a network like those the shipped predictor trained on
    model = tmp_path / "cnn.onnx"
    model.write_bytes(export(build(spec), spec.input_shape))
    assert main(["predict", str(model)]) == 0
    cap = capsys.readouterr()
    first = cap.out.splitlines()[0]
    ms, lo, hi = float(first.split(" ms")[0]), *map(float, first.split("[")[1].split("]")[0].split(", "))
    assert 0 < lo < ms < hi and str(model) in first and "(90% interval)" in first
    assert "operator types seen in training" in cap.out and "using the shipped predictor" in cap.err
    latest = shipped.resolve(shipped.DEFAULT_LATENCY).spec  # the default is the latest version
    assert main(["predict", str(model), "--predictor", latest, "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js[0]["ms"] == pytest.approx(ms, rel=1e-3) and js[0]["coverage"]["nodes"] > 0
    assert js[0]["predictor"] == latest
    r = predict_latency(str(model))
    assert r.ms == pytest.approx(js[0]["ms"]) and r.low == pytest.approx(js[0]["low"])
    # errors: an unknown predictor, both flags, a missing path
    assert main(["predict", str(model), "--predictor", "nope"]) == 2
    assert main(["predict", str(model), "--predictor", "x", "--checkpoint", "y"]) == 2
    assert main(["predict", str(model), "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "no shipped predictor named 'nope'" in err and "not both" in err and "no " in err


def test_predict_a_pytorch_module(tmp_path, monkeypatch, capsys):
    (tmp_path / "mymodels.py").write_text(
        "import torch.nn as nn\n"
        "def small():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))\n"
        "def broken():\n"
        "    raise RuntimeError('no weights here')\n"
        "NOT_A_MODULE = 3\n")
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "--torch", "mymodels:small", "--input-shape", "1,3,32,32", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)[0]
    assert r["model"] == "mymodels:small" and r["ms"] > 0
    direct = predict_latency(ConvNet(), (1, 3, 32, 32))
    assert direct.ms == pytest.approx(predict_latency(ConvNet(), torch.randn(1, 3, 32, 32)).ms)
    g, _ = torch_to_graph(ConvNet(), (1, 3, 32, 32))
    assert direct.coverage.nodes == sum(o.startswith("onnx:") for o in g.ops)
    for argv, msg in ((["--torch", "mymodels:small"], "needs --input-shape"),
                      (["--torch", "mymodels:small", "--input-shape", "1,x"], "positive integers"),
                      (["--torch", "nomodule:f", "--input-shape", "1,3,8,8"], "cannot import"),
                      (["--torch", "mymodels:missing", "--input-shape", "1,3,8,8"], "has no 'missing'"),
                      (["--torch", "mymodels:broken", "--input-shape", "1,3,8,8"], "no weights here"),
                      (["--torch", "mymodels:NOT_A_MODULE", "--input-shape", "1,3,8,8"], "not a torch.nn.Module"),
                      (["--torch", "mymodels", "--input-shape", "1,3,8,8"], "module:callable")):
        assert main(["predict", *argv]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
    with pytest.raises(NNFormerError, match="example input"):
        predict_latency(ConvNet())


def test_predictors_lists_the_registry(capsys):
    assert main(["predictors"]) == 0
    out = capsys.readouterr().out
    latest = shipped.resolve(shipped.DEFAULT_LATENCY)
    assert out.count("(default for ONNX models)") == 1  # its latest version only
    assert f"{latest.spec} (default for ONNX models)" in out and "held out: " in out
    assert main(["predictors", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["files"]


def test_adapt_fine_tunes_on_a_profile_directory(small_dataset, tmp_path, capsys):
    out = tmp_path / "my-cpu"
    assert main(["adapt", "--profile", str(small_dataset), "--out", str(out), "--steps", "3", "--n", "6"]) == 0
    line = capsys.readouterr().out
    assert "MAPE on the 6 measurements" in line and "interval kept" in line
    q = Predictor.load(out)
    assert q.card_["name"] == "my-cpu" and q.card_["base"] == shipped.resolve(shipped.DEFAULT_LATENCY).spec
    assert q.card_["n_adapt"] == 6 and q.header_["finetuned"]["n"] == 6
    base = shipped.load(shipped.DEFAULT_LATENCY)
    # the default keeps its own device's probe; adapted to the measured device, the copy does not
    assert "home_probe" in base.header_ and "home_probe" not in q.header_
    from nnformer.latency.dataset import load_training_set

    graphs = load_training_set(small_dataset)[1]
    assert not np.array_equal(q.predict(graphs), base.predict(graphs))
    model = tmp_path / "cnn.onnx"
    model.write_bytes(export(ConvNet(), (1, 3, 32, 32)))
    assert main(["predict", str(model), "--predictor", str(out)]) == 0
    assert "my-cpu@1" not in capsys.readouterr().err  # a directory given: no shipped-predictor notice
    # errors: more samples than measured, a missing profile, an accuracy predictor, a non-predictor --out
    assert main(["adapt", "--profile", str(small_dataset), "--out", str(tmp_path / "a"), "--n", "99"]) == 2
    assert main(["adapt", "--profile", str(tmp_path / "none"), "--out", str(tmp_path / "b")]) == 2
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("keep")
    assert main(["adapt", "--profile", str(small_dataset), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "holds only 12" in err and "not a predictor directory" in err
    assert (tmp_path / "c" / "x").read_text() == "keep" and not (tmp_path / "a").exists()


def test_every_shipped_file_is_package_data():
    """A `pip install` (not only an editable one) carries each registry file: pyproject's package-data covers them."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")
    root = shipped.ROOT.parent
    patterns = tomllib.loads((root.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "nnformer"]
    files = ["predictors/registry.json"] + [
        (e.path() / f).relative_to(root).as_posix() for e in shipped.entries() for f in e.files]
    assert len(files) >= 3
    for f in files:
        assert any(fnmatch.fnmatch(f, p) for p in patterns), f


def test_readme_latency_example_prints_what_the_readme_shows(monkeypatch, capsys):
    """The README's `nnformer predict --torch examples.models:resnet18` block is this command's output (numbers to
    0.5%: other vector kernels sum floats in another order); attention written with einsum is flagged, without an
    interval."""
    import re

    root = shipped.ROOT.parents[1]
    readme = (root / "README.md").read_text()
    block = readme[readme.index("$ nnformer predict --torch"):]
    block = block[:block.index("```")].splitlines()
    argv = block[0].split("#")[0].split()[2:]
    monkeypatch.chdir(root)
    assert argv[0] == "predict" and main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(block) - 1
    for got, want in zip(out, block[1:]):
        num = r"\d+\.\d+"
        assert re.sub(num, "#", got) == re.sub(num, "#", want)
        assert np.allclose([float(x) for x in re.findall(num, got)], [float(x) for x in re.findall(num, want)],
                           rtol=5e-3)
    assert "examples.models:einsum_attention" in readme
    assert main(["predict", "--torch", "examples.models:einsum_attention", "--input-shape", "1,256,256"]) == 0
    out = capsys.readouterr().out
    assert "(no interval" in out and "UNRELIABLE" in out and "1 unseen (Einsum)" in out
    # --json says the same: no interval for the flagged model, an interval for the one the predictor knows
    assert main(["predict", "--torch", "examples.models:einsum_attention", "--input-shape", "1,256,256",
                 "--json"]) == 0
    (att,) = json.loads(capsys.readouterr().out)
    assert att["low"] is None and att["high"] is None and not att["coverage"]["reliable"] and att["ms"] > 0
    assert main(["predict", "--torch", "examples.models:resnet18", "--input-shape", "1,3,64,64", "--json"]) == 0
    (cnn,) = json.loads(capsys.readouterr().out)
    assert cnn["coverage"]["reliable"] and 0 < cnn["low"] < cnn["ms"] < cnn["high"]


@pytest.mark.slow
def test_shipped_help_predictor_scores_the_space_by_name(data_dir, tmp_path, capsys):
    out = tmp_path / "fpga.csv"
    assert main(["score", "--space", "nb201", "--checkpoint", "help-nb201-fpga", "--out", str(out), "--data-dir",
                 str(data_dir), "--quiet"]) == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 15_626 and all(float(r.rsplit(",", 1)[1]) > 0 for r in rows[1:200])
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", "help-nb201-fpga@1", "--data", "help-nb201:fpga", "--data-dir",
                 str(data_dir), "--quiet"]) == 0
    m = json.loads(capsys.readouterr().out)
    # every cell, the 1,000 trained on included: no worse than the registry's held-out figure by much
    assert m["mape"] < 1.2 * shipped.resolve("help-nb201-fpga").metrics["mape"]


def test_an_edited_predictor_config_is_refused_naming_the_file(tiny_latency, tmp_path, capsys):
    """A predictor directory records the sha256 of its config as well as of its weights: one changed digit of
    config.json (here the interval's quantile, a target's mean: predictions change) is one line, not a silently
    different prediction; a config rewritten with the same values in another layout still loads."""
    p, graphs, _ = tiny_latency
    d = p.save(tmp_path / "pred")
    cfg = d / "config.json"
    text = cfg.read_text()
    config = json.loads(text)
    assert set(config) >= {"config_sha256", "weights"} and len(config["config_sha256"]) == 64
    model = tmp_path / "cnn.onnx"
    model.write_bytes(export(ConvNet(), (1, 3, 32, 32)))
    mean = repr(config["target"]["mean"])
    assert text.count(mean) == 1
    for digit in ("0", "1"):
        edited = text.replace(mean, mean[:-1] + ("1" if mean[-1] == digit else digit))
        if edited != text:
            break
    cfg.write_text(edited)
    with pytest.raises(CheckpointError, match="config.json does not match the sha256 it records of itself"):
        Predictor.load(d)
    assert main(["predict", str(model), "--predictor", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(cfg) in err and "does not match the sha256" in err
    cfg.write_text(json.dumps(config, indent=4, sort_keys=True))  # the same values, laid out anew
    assert np.array_equal(Predictor.load(d).predict(graphs), p.predict(graphs))
    del config["config_sha256"]
    cfg.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="records no sha256 of itself"):
        Predictor.load(d)


def test_shipped_predictors_record_their_config_digest_and_resave_consistently(tmp_path):
    """Every shipped config.json carries its own sha256 (checked by Predictor.load, besides the registry's), and a
    shipped predictor saved again as a .pt file or a directory reads back and predicts the same."""
    from nnformer.predictor import config_digest
    from nnformer.spaces.nb201 import arch_to_graph

    cells = [arch_to_graph("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")]
    onnx = [torch_to_graph(ConvNet(), (1, 3, 32, 32))]
    for e in shipped.entries():
        cfg = json.loads((e.path() / "config.json").read_text())
        assert cfg["config_sha256"] == config_digest(cfg), e.spec
        p = shipped.load(e.spec)
        graphs = [with_static(g, s) for g, s in onnx] if p.vocab_.name == "onnx" else cells
        want = p.predict(graphs)
        for where in (tmp_path / f"{e.name}.pt", tmp_path / e.name):
            assert np.array_equal(Predictor.load(p.save(where)).predict(graphs), want), (e.spec, where)


def test_a_pt_file_with_an_edited_setting_is_refused(tiny_latency, tmp_path):
    """A .pt predictor keeps its settings in the archive's pickle, whose CRC-32 is checked before torch reads it: an
    edit of a setting is refused like an edit of the weights."""
    p, _, _ = tiny_latency
    f = p.save(tmp_path / "p.pt")
    blob = f.read_bytes()
    assert blob.count(b"interval") >= 1
    f.write_bytes(blob.replace(b"interval", b"intervam", 1))
    with pytest.raises(CheckpointError, match=r"altered, truncated or corrupt archive \(.*data.pkl fails"):
        Predictor.load(f)


def test_arch_strings_print_their_unit_and_need_an_nb201_predictor(capsys):
    cell = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert main(["predict", "--predictor", "help-nb201-fpga", cell]) == 0
    value, arch = capsys.readouterr().out.strip().split("\t")
    assert arch == cell and value.endswith(" ms") and float(value[:-3]) > 0
    for flag in ("--checkpoint", "--predictor"):
        assert main(["predict", flag, shipped.DEFAULT_LATENCY, cell]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "unknown op" not in err
        assert f"{shipped.DEFAULT_LATENCY} is a latency predictor of ONNX graphs" in err
        assert "NB201 arch strings need a predictor trained on NB201 cells" in err


def test_predict_verbs_as_library_calls(tmp_path):
    """What `nnformer predict` prints comes from library calls: ``shipped.predict_nb201`` for arch strings,
    ``predict_models`` (notes to ``log``) and ``format_results`` for models."""
    from nnformer.latency.predict import format_results, predict_models

    cell = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    pred, unit = shipped.predict_nb201("help-nb201-fpga", [cell, cell])
    assert unit == " ms" and len(pred) == 2 and pred[0] == pytest.approx(pred[1], rel=1e-5) and pred[0] > 0
    with pytest.raises(NNFormerError, match="need a predictor of NB201 cells"):
        shipped.predict_nb201(None, [cell])
    with pytest.raises(NNFormerError, match="malformed"):  # the strings are read before the (absent) predictor
        shipped.predict_nb201(None, ["|bogus|"])
    notes = []
    results = predict_models([torch_to_graph(ConvNet(), (1, 3, 32, 32))], log=notes.append)
    assert len(notes) == 2 and "using the shipped predictor" in notes[0] and "milliseconds for" in notes[1]
    lines = format_results(["net"], results)
    assert len(lines) == 2 and lines[0].startswith(f"{results[0].ms:.3f} ms") and lines[0].endswith("\tnet")
    assert lines[1] == f"  {results[0].coverage.describe()}"


def test_torch_takes_a_file_path_from_any_directory(tmp_path, monkeypatch, capsys):
    models = tmp_path / "lib" / "nets.py"
    models.parent.mkdir()
    (models.parent / "blocks.py").write_text(  # a neighbour the file imports, as it would when run from there
        "import torch.nn as nn\n"
        "def conv():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))\n")
    models.write_text(
        "import torch\n"
        "from blocks import conv\n"
        "def small():\n"
        "    return conv()\n"
        "class Hungry(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        raise RuntimeError('[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: '\n"
        "                           'you tried to allocate 1099511627776 bytes.')\n"
        "def hungry():\n"
        "    return Hungry()\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for spec in ("../lib/nets.py:small", f"{models}:small"):
        assert main(["predict", "--torch", spec, "--input-shape", "1,3,16,16", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)[0]
        assert r["model"] == spec and r["ms"] > 0
    assert main(["predict", "--torch", "../lib/nets.py:hungry", "--input-shape", "1,3,16,16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not enough memory to run it once on an input of shape (1, 3, 16, 16)" in err
    assert main(["predict", "--torch", "../lib/none.py:small", "--input-shape", "1,3,16,16"]) == 2
    assert "no Python file at ../lib/none.py" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_an_oversized_input_shape_is_refused_before_the_model_is_built(monkeypatch, capsys):
    root = shipped.ROOT.parents[1]
    monkeypatch.chdir(root)
    assert main(["predict", "--torch", "examples.models:resnet18", "--input-shape", "100000,3,1024,1024"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "314,572,800,000 elements" in err and "67,108,864" in err
    from nnformer.errors import OnnxError
    from nnformer.latency.profiler import export_onnx

    def no_memory(*a, **k):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4096 bytes")

    monkeypatch.setattr(torch, "zeros", no_memory)  # an input that fits the cap but not this machine's memory
    with pytest.raises(OnnxError, match=r"cannot make an example input of shape \(1, 3, 32, 32\)"):
        export_onnx(ConvNet(), (1, 3, 32, 32), None)


def test_a_model_outside_the_trained_sizes_is_flagged_without_an_interval(capsys, tmp_path, monkeypatch):
    """A shipped predictor knows the sizes it trained on: for `cpu-ort-b1` (ten hand-written CNN families) a
    ResNet-18 at 448 px (about 5x the FLOPs of its largest training network) and a 6-layer MLP (fewer nodes and FLOPs
    than its smallest) are flagged, with no interval in the text or the JSON; a ResNet-18 at 224 px is inside and
    keeps its interval."""
    from nnformer.latency.coverage import SIZE_MARGIN

    monkeypatch.chdir(shipped.ROOT.parents[1])  # examples/ is importable from the repository's root
    (tmp_path / "mlp.py").write_text("from torch import nn\n\ndef mlp():\n    return nn.Sequential(*[m for _ in range(6)"
                                     " for m in (nn.Linear(256, 256), nn.ReLU())])\n")
    cases = [("examples.models:resnet18", "1,3,448,448", "FLOPs", "the largest trained on"),
             (f"{tmp_path / 'mlp.py'}:mlp", "1,256", "nodes 14", "the smallest trained on")]
    for spec, shape, what, where in cases:
        assert main(["predict", "--torch", spec, "--input-shape", shape, "--json", "--predictor", "cpu-ort-b1"]) == 0
        (r,) = json.loads(capsys.readouterr().out)
        assert r["low"] is None and not r["coverage"]["reliable"] and r["coverage"]["unseen"] == []
        assert any(what in o and where in o for o in r["coverage"]["outside"]), r["coverage"]["outside"]
        assert main(["predict", "--torch", spec, "--input-shape", shape, "--predictor", "cpu-ort-b1"]) == 0
        out = capsys.readouterr().out
        assert "(no interval" in out and "UNRELIABLE: outside the sizes it trained on" in out
    p = shipped.load_any("cpu-ort-b1")
    lo, hi = p.header_["train_ranges"]["nodes"]
    assert 1 <= lo < hi and SIZE_MARGIN > 1
    assert main(["predict", "--torch", "examples.models:resnet18", "--input-shape", "1,3,224,224", "--json",
                 "--predictor", "cpu-ort-b1"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["coverage"]["outside"] == [] and r["low"] is not None


def test_fit_records_the_sizes_and_finetuning_widens_them():
    from nnformer.latency.families import build, sample
    from nnformer.latency.onnx_graph import torch_to_graph, with_static

    g = [with_static(*torch_to_graph(build(sample("alexnet", seed=0, index=i)),
                                     sample("alexnet", seed=0, index=i).input_shape)) for i in range(6)]
    ms = np.linspace(1.0, 3.0, 6)
    p = Predictor(settings={"steps": 2, "n_layers": 1, "dim": 16}, task="latency", progress=False).fit(g[:4], ms[:4])
    r = p.header_["train_ranges"]
    assert r["nodes"] == [min(x.num_nodes for x in g[:4]), max(x.num_nodes for x in g[:4])]
    assert len(r["graph_features"]) == len(g[0].graph_features)
    assert r["graph_features"][0][1] == pytest.approx(max(float(x.graph_features[0]) for x in g[:4]))
    q = p.finetune(g[4:], ms[4:], steps=1)
    wide = q.header_["train_ranges"]
    assert wide["graph_features"][0][1] == pytest.approx(max(float(x.graph_features[0]) for x in g))
    assert p.header_["train_ranges"] == r  # the original is left as it was
