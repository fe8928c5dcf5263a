import json
import subprocess
import sys

import numpy as np
import pytest

from nnformer.cli import main

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "nnformer", *args], capture_output=True, text=True)


def test_help_lists_every_verb_and_each_verb_explains_itself():
    """Every verb the parser dispatches is named in the top-level help with a line of its own, and its own --help
    exits 0 with a description (the verbs are read from the parser, not from a copy of the list)."""
    import argparse

    from nnformer.cli import build_parser

    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert len(verbs) >= 10
    r = run_cli("--help")
    assert r.returncode == 0
    for verb, sub in verbs.items():
        assert f"    {verb}" in r.stdout, verb
        assert sub.description or sub.format_help().count("\n") > 3, verb
        with pytest.raises(SystemExit) as e:
            parser.parse_args([verb, "--help"])
        assert e.value.code == 0, verb


@pytest.mark.parametrize("args, needle", [
    (["predict", "--checkpoint", "x.pt", "|nor_conv_3x3~0|+|bad|"], "malformed NAS-Bench-201 arch string"),
    (["predict", "--checkpoint", "missing.pt", CELL], "no checkpoint at missing.pt"),
    (["predict", "--checkpoint", "x.pt", "--file", "nope.txt"], "cannot read nope.txt"),
    (["predict", "--checkpoint", "x.pt", "--file", "latin1.txt"], "cannot read latin1.txt: not UTF-8 text (byte 0xe9"),
    (["predict", "--checkpoint", "x.pt", ""], "an empty architecture was given"),
    (["predict", ""], "an empty architecture was given"),
    (["train", "--out", "o", "--n-train", "15000", "--n-val", "100000"], "--n-val can be at most 625 here"),
    (["train", "--out", "o", "--set", "n_heads=6", "--n-train", "10"], "n_heads must be a positive multiple of 4"),
    (["train", "--out", "o", "--set", "steps=0", "--n-train", "10"], "trains for no steps and no epochs"),
    (["train", "--out", "o", "--set", "nope=1"], "unknown setting 'nope'; settings: amp, batch_size"),
    (["train", "--out", "o", "--set", "lr"], "--set 'lr': expected KEY=VALUE"),
    (["reproduce", "accuracy", "--set", "nope=1"], "unknown setting 'nope'"),
    (["train", "--out", "o", "--n-train", "15625"], "--n-train must be below the 15,625"),
    (["train", "--out", "o", "--n-train", "0"], "argument --n-train: must be at least 1"),
    (["train", "--out", "o", "--set", "lr=nan"], "setting lr='nan': not a valid finite number"),
    (["train", "--out", "o", "--set", "lr=-1"], "lr must be positive, got -1.0"),
    (["train", "--out", "o", "--set", "dropout=1"], "dropout must be in [0, 1)"),
    (["train", "--out", "o", "--set", "batch_size=x"], "setting batch_size='x': not a valid int"),
    (["train", "--out", "o", "--set", "amp=maybe"], "setting amp='maybe': not a valid bool"),
    (["train", "--out", "o", "--threads", "0"], "argument --threads: must be at least 1"),
    (["train", "--out", "o", "--bogus"], "unrecognized arguments: --bogus"),
    (["reproduce", "accuracy", "--jobs", "0"], "argument --jobs: must be at least 1"),
    (["reproduce", "accuracy", "--seeds", "0"], "argument --seeds: must be at least 1"),
    (["score", "--checkpoint", "c.pt", "--out", "s.csv", "--chunk", "0"], "argument --chunk: must be at least 1"),
    (["profile", "--per-family", "0", "--out", "d"], "argument --per-family: must be at least 1"),
    (["evaluate", "--checkpoint", "notes.txt"], "notes.txt: not a PyTorch checkpoint"),
    (["score", "--checkpoint", "c.pt", "--out", "s.csv", "--device", "gpu0"],
     "--device must be cpu, cuda or cuda:N, got 'gpu0'"),
    (["train", "--out", "o", "--device", "gpu0"], "--device must be cpu, cuda or cuda:N, got 'gpu0'"),
    pytest.param(["score", "--checkpoint", "c.pt", "--out", "s.csv", "--device", "cuda"],
                 "--device cuda asked for, but no CUDA GPU is available",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")),
])
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    (tmp_path / "latin1.txt").write_bytes("# caf\u00e9\n".encode("latin-1"))
    r = subprocess.run([sys.executable, "-m", "nnformer", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latin1.txt", "notes.txt"]  # refused before any output


def test_unknown_flag_exit_2():
    assert run_cli("train", "--bogus").returncode == 2


def test_train_evaluate_predict_end_to_end(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--n-train", "60", "--n-val", "40", "--set", "epochs=4", "--set", "eval_every=2", "--set",
               "n_layers=1", "--set", "dim=16", "--out", str(out), "--data-dir", str(data_dir), "--quiet"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_train"] == 60 and m["train_config"]["epochs"] == 4
    assert (out / "scatter.png").stat().st_size > 10_000
    pred = np.load(out / "predictions.npy")
    assert pred.shape == (15625,)
    from nnformer.data.nb201 import load_nb201
    from nnformer.metrics import kendall_tau

    assert m["tau_test"] == pytest.approx(kendall_tau(pred, load_nb201(data_dir).label("test")), abs=1e-12)
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(out / "predictor.pt"), "--data-dir", str(data_dir), "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["tau_test"] == pytest.approx(m["tau_test"])

    archs = tmp_path / "archs.txt"
    archs.write_text(f"# comment\n{CELL}\n")
    assert main(["predict", "--checkpoint", str(out / "predictor.pt"), "--file", str(archs), CELL]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    value, unit = lines[0].split("\t")[0][:-1], lines[0].split("\t")[0][-1]
    assert unit == "%" and float(value) == pytest.approx(np.load(out / "predictions.npy")[1], abs=1e-4)


@pytest.mark.slow
def test_train_steps_sets_the_epochs_from_the_batches(data_dir, tmp_path):
    # 60 cells in mixed-size batches of 128 (efficient) = 1 step per epoch; of 16 = 4 steps per epoch
    # (and mlp_ratio overrides the recipe's hidden width: 4 x dim below N=400 under scaled)
    for batch, steps, epochs, ratio in [(None, 3, 3, None), ("16", 9, 3, "3")]:
        out = tmp_path / f"run{batch}"
        extra = (["--set", f"batch_size={batch}"] if batch else []) + (["--set", f"mlp_ratio={ratio}"] if ratio else [])
        assert main(["train", "--n-train", "60", "--n-val", "40", "--set", f"steps={steps}", "--set", "n_layers=1",
                     "--set", "dim=16", "--out", str(out), "--data-dir", str(data_dir), "--quiet", *extra]) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert m["train_config"]["epochs"] == epochs
        assert m["model_config"]["mlp_ratio"] == (float(ratio) if ratio else 4.0)


def test_data_verify_reports_tampering(data_dir, tmp_path):
    r = run_cli("data", "verify", "--data-dir", str(data_dir))
    from nnformer.data.registry import RAW_FILES

    assert r.returncode == 0 and r.stdout.count("ok") == len(RAW_FILES) > 7
    bad = tmp_path / "nasbench201"
    bad.mkdir()
    (bad / "cifar100.json").write_text("[]")
    r = run_cli("data", "verify", "nasbench201/cifar100.json", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "altered" in r.stdout


@pytest.mark.slow
def test_score_streams_whole_spaces(data_dir, tmp_path):
    import csv

    from nnformer.baselines import MLPConfig
    from nnformer.predictor import Predictor
    from nnformer.spaces.nb201 import arch_to_graph
    from nnformer.train import TrainConfig

    gs = [arch_to_graph(CELL), arch_to_graph("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")]
    p = Predictor(network=MLPConfig(hidden=8, n_layers=1), train=TrainConfig(epochs=1), progress=False)
    p.fit(gs, [0.9, 0.1])
    ck = p.save(tmp_path / "p.pt")
    out = tmp_path / "scores.csv"
    assert main(["score", "--checkpoint", str(ck), "--out", str(out), "--chunk", "5000", "--quiet",
                 "--data-dir", str(data_dir)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 15625 and rows[1]["arch"] == CELL and rows[1]["key"] == "1"
    assert float(rows[1]["prediction"]) == pytest.approx(p.predict([gs[0]])[0], abs=1e-5)
    assert not list(tmp_path.glob(".tmp-*"))
    out101 = tmp_path / "nb101.csv"
    # a predictor knows the ops of its own space only: NB201's predictor refuses NB101 cells in one line
    r = run_cli("score", "--space", "nb101", "--checkpoint", str(ck), "--out", str(out101), "--quiet",
                "--data-dir", str(data_dir))
    assert r.returncode == 2 and "for the 'nb201' op vocabulary" in r.stderr
    assert not out101.exists()
    from nnformer.spaces.nb101 import spec_to_graph

    g101 = [spec_to_graph([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", op, "output"])
            for op in ("conv3x3-bn-relu", "maxpool3x3")]
    ck101 = Predictor(network=MLPConfig(max_nodes=7, hidden=8, n_layers=1), train=TrainConfig(epochs=1),
                      progress=False).fit(g101, [0.9, 0.1]).save(tmp_path / "p101.pt")
    assert main(["score", "--space", "nb101", "--checkpoint", str(ck101), "--out", str(out101), "--quiet",
                 "--data-dir", str(data_dir)]) == 0
    rows = list(csv.DictReader(out101.open()))
    assert len(rows) == 2500 and len(rows[0]["arch"]) == 32


def test_score_refuses_to_overwrite_a_file_it_did_not_write(data_dir, tmp_path, capsys):
    from nnformer.baselines import MLPConfig
    from nnformer.predictor import Predictor
    from nnformer.spaces.nb201 import arch_to_graph
    from nnformer.train import TrainConfig

    gs = [arch_to_graph(CELL), arch_to_graph("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")]
    ck = Predictor(network=MLPConfig(hidden=8, n_layers=1), train=TrainConfig(epochs=1), progress=False).fit(
        gs, [0.9, 0.1]).save(tmp_path / "p.pt")
    args = ["score", "--checkpoint", str(ck), "--quiet", "--data-dir", str(data_dir), "--out"]
    notes = tmp_path / "notes.csv"
    notes.write_text("name,phone\nAda,123\n")
    assert main([*args, str(notes)]) == 2
    err = capsys.readouterr().err
    assert f"--out {notes} exists and is not a scores CSV" in err and err.count("\n") == 1
    assert notes.read_text() == "name,phone\nAda,123\n"
    earlier = tmp_path / "scores.csv"  # an earlier output of `score` is replaced, as a rerun expects
    earlier.write_text("key,arch,prediction\r\n0,|x|,1.0\r\n")
    assert main([*args, str(earlier)]) == 0
    assert len(earlier.read_text().splitlines()) == 15_626
