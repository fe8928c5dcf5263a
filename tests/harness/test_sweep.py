import json

import numpy as np
import pytest

from nnformer.cli import main
from nnformer.harness import methods as hm
from nnformer.harness import report, sweep
from nnformer.harness.benchmark_data import nb201_space
from nnformer.recipes import DEFAULT_RECIPE

# a tiny network and 3 epochs: the sweep's machinery, not its numbers
TINY = ["--set", "n_layers=1", "--set", "dim=16", "--set", "epochs=3"]
TINY_SETTINGS = {"n_layers": "1", "dim": "16", "epochs": "3"}
TAG = f"{DEFAULT_RECIPE}-dim16-epochs3-nlayers1"


@pytest.mark.slow
def test_sweep_stores_resumes_and_writes_tables(data_dir, tmp_path, monkeypatch, capsys):
    args = ["reproduce", "accuracy", "--space", "nb201", "--methods", "nnformer,mlp", "--ns", "40,80", "--seeds", "2",
            "--out", str(tmp_path), "--data-dir", str(data_dir), "--quiet", "--threads", "1", *TINY]
    assert main(args) == 0
    d = tmp_path / "nb201-cifar10" / TAG
    runs = sweep.stored_runs(d)
    assert sorted(runs) == [(m, n, s) for m in ("mlp", "nnformer") for n in (40, 80) for s in (0, 1)]
    rec = runs["nnformer", 40, 1]
    assert rec["n_train"] == 40 and rec["seed"] == 1 and rec["epochs"] == 3
    # the seed and N reach the run: each (N, seed) trains a different network
    assert len({r["tau_test"] for k, r in runs.items() if k[0] == "nnformer"}) == 4
    assert rec["settings"] == {"n_layers": 1, "dim": 16, "epochs": 3} and rec["model_config"]["dim"] == 16
    assert rec["machine"] and rec["code"]
    md = (d / "table.md").read_text()
    assert "NN-Former (paper masks)" in md and "(k=2)" in md and "Command: `nnformer reproduce" in md
    assert (d / "table_tau_vs_n.png").stat().st_size > 5000
    csv_rows = (d / "table.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 4
    # the stored mean is what the table prints
    taus = [runs["nnformer", 40, s]["tau_test"] for s in (0, 1)]
    assert f"{np.mean(taus):.4f} ± {np.std(taus, ddof=1):.4f} (k=2)" in md
    assert "Runs used 1 torch thread(s) each, with 1 run(s) at a time" in md and "The 8 runs took " in md
    assert json.loads((d / "table.json").read_text())["runs"] == 8

    # a rerun trains nothing: every result comes from the store
    monkeypatch.setattr(sweep, "run_one", lambda *a, **k: pytest.fail("re-ran a stored result"))
    assert main(args) == 0
    assert "Incomplete" not in (d / "table.md").read_text()

    # --from-cache on a bigger grid writes the partial table, says so, and trains nothing
    lines = (d / "runs.jsonl").read_text().splitlines()
    (d / "runs.jsonl").write_text("\n".join(ln for ln in lines if '"method":"mlp","space":"nb201-cifar10","n_train":80,'
                                            '"seed":1' not in ln) + "\n")
    assert len(sweep.stored_runs(d)) == 7
    assert main(args[:5] + ["nnformer,mlp,gcn"] + args[6:] + ["--from-cache"]) == 0
    md = (d / "table.md").read_text()
    assert "Incomplete: 7 of 12 runs are stored" in md and "(`gcn`)" not in md
    mlp_row = next(ln for ln in md.splitlines() if "(`mlp`)" in ln)
    assert "(k=2)" in mlp_row and "(k=1)" in mlp_row
    assert len(sweep.stored_runs(d)) == 7


@pytest.mark.slow
def test_a_torn_last_line_is_skipped_and_rerun(data_dir, tmp_path):
    args = ["reproduce", "accuracy", "--space", "nb201", "--methods", "mlp", "--ns", "40", "--seeds", "2",
            "--out", str(tmp_path), "--data-dir", str(data_dir), "--quiet", "--threads", "1", *TINY]
    assert main(args) == 0
    store = tmp_path / "nb201-cifar10" / TAG / "runs.jsonl"
    whole = store.read_text()
    store.write_text(whole[:-40])  # a kill while the second run was being written
    assert len(sweep.stored_runs(store.parent)) == 1
    assert main(args) == 0
    text = store.read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 2 and len(sweep.stored_runs(store.parent)) == 2
    a, b = (json.loads(x) for x in (whole.splitlines()[1], text.splitlines()[1]))
    assert (a["seed"], a["tau_test"], a["tau_val"]) == (b["seed"], b["tau_test"], b["tau_val"])  # the same run again


def test_settings_are_stored_and_written_apart(data_dir, tmp_path):
    args = ["reproduce", "accuracy", "--space", "nb201", "--methods", "mlp", "--ns", "40", "--seeds", "1",
            "--out", str(tmp_path), "--data-dir", str(data_dir), "--quiet", "--threads", "1", "--set", "n_layers=1",
            "--set", "steps=9"]
    assert main(args) == 0
    d = tmp_path / "nb201-cifar10" / f"{DEFAULT_RECIPE}-nlayers1-steps9"
    rec = sweep.stored_runs(d)["mlp", 40, 0]
    # 40 cells in one mixed-size batch of 128: 9 steps = 9 epochs
    assert rec["settings"] == {"n_layers": 1, "steps": 9} and rec["epochs"] == 9
    assert sweep.recipe_tag("scaled", {"mlp_ratio": 2.0}) == sweep.recipe_tag("scaled", {"mlp_ratio": 2}) == \
        "scaled-mlpratio2"
    assert "with n_layers=1, steps=9" in (d / "table.md").read_text()
    assert not (tmp_path / "nb201-cifar10" / DEFAULT_RECIPE).exists()
    assert main(args[:-1] + ["steps=0"]) == 2


def test_same_seed_same_result(data_dir):
    space = nb201_space(data_dir)
    a = sweep.run_one(space, "nnformer-released", 40, 0, DEFAULT_RECIPE, TINY_SETTINGS, threads=1)
    b = sweep.run_one(space, "nnformer-released", 40, 0, DEFAULT_RECIPE, TINY_SETTINGS, threads=1)
    assert a["tau_test"] == b["tau_test"] and a["tau_val"] == b["tau_val"]


def test_a_run_trains_through_the_predictor_as_a_user_would(data_dir):
    """The sweep's number for a method is the one a user gets from Predictor with the same recipe and seed."""
    from nnformer import Predictor
    from nnformer.metrics import kendall_tau

    space = nb201_space(data_dir)
    rec = sweep.run_one(space, "nnformer", 40, 1, DEFAULT_RECIPE, TINY_SETTINGS, threads=1)
    p = Predictor(settings={**TINY_SETTINGS, "evals": 10, "seed": 1}, progress=False)
    y = space.train_label
    p.fit(space.graphs[:40], y[:40], space.graphs[40:1064], y[40:1064])
    assert kendall_tau(p.predict(space.graphs), space.test_labels["test"]) == rec["tau_test"]


@pytest.mark.slow
def test_worker_rebuilds_space_and_returns_the_record(data_dir, monkeypatch):
    """What a worker process does: rebuild the space from its source once, then run jobs against it."""
    from functools import partial

    from nnformer.harness import engine
    from nnformer.harness.benchmark_data import load_space

    space = nb201_space(data_dir)
    monkeypatch.setattr(engine, "_CONTEXT", load_space(*space.source))
    run = partial(sweep._run_job, recipe=DEFAULT_RECIPE, settings=TINY_SETTINGS, threads=1)
    rec = engine._call(run, ("mlp", 40, 0))
    assert rec["method"] == "mlp" and rec["space"] == "nb201-cifar10" and rec["torch_threads"] == 1
    assert rec["code"].startswith("0.")


def test_findings_pair_runs_by_seed_and_compare_with_the_paper():
    rec = [{"method": m, "n_train": n, "seed": s, "tau_test": t} for m, n, s, t in [
        ("nnformer", 156, 0, 0.80), ("nnformer", 156, 1, 0.82), ("nnformer-released", 156, 0, 0.79),
        ("nnformer-released", 156, 1, 0.83), ("nnformer-released", 156, 2, 0.10),  # seed 2 has no partner
        ("nnformer", 781, 0, 0.86), ("transformer", 781, 0, 0.90), ("transformer", 156, 0, 0.70)]]
    out = report.findings(rec, (156, 781, 1563), "nb201-cifar10")
    assert not any("N=1563" in ln for ln in report.findings(rec, (156, 781), "nb201-cifar10"))
    masks = next(ln for ln in out if "sibling masks" in ln)
    assert "**Yes, at every N run**" in masks and "N=156: +0.0000 ± 0.0141, higher in 1 of 2 seeds" in masks
    assert "N=781" not in masks  # no released run at 781
    tr = next(ln for ln in out if "plain transformer" in ln)
    assert "**No, not at every N run**" in tr and "N=156: +0.1000 (1 seed)" in tr and "N=781: -0.0400 (1 seed)" in tr
    assert not any("GCN baseline" in ln for ln in out)
    paper = [ln for ln in out if ln.startswith("- NN-Former (paper masks) at N=")]
    assert "0.8100 (k=2) vs the paper's 0.804: +0.0060, within 0.02" in paper[0]
    assert "N=1563 (paper 0.890): not run yet" in paper[1]


@pytest.mark.slow
def test_quick_runs_the_core_methods_unless_told_otherwise(data_dir, tmp_path, monkeypatch):
    grids = []

    def fake_sweep(space, methods, ns, seeds, recipe, directory, settings=None, **kw):
        grids.append((tuple(methods), tuple(ns), tuple(seeds)))
        return []

    monkeypatch.setattr(sweep, "sweep", fake_sweep)
    base = ["reproduce", "accuracy", "--space", "nb201", "--quick", "--out", str(tmp_path), "--data-dir",
            str(data_dir), "--quiet"]
    assert main(base) == 0
    assert (tmp_path / "nb201-cifar10" / DEFAULT_RECIPE / "quick.md").is_file()
    assert main(base + ["--methods", "all"]) == 0
    assert main(base + ["--methods", "gcn"]) == 0
    assert grids[0] == (hm.QUICK_METHODS, (156, 781), (0,))
    assert set(hm.QUICK_METHODS) < set(hm.METHODS) and "transformer" in hm.QUICK_METHODS
    assert grids[1][0] == tuple(hm.METHODS) and grids[2][0] == ("gcn",)


def test_tables_merge_test_and_val_when_the_data_has_one_label(tmp_path):
    cell = {"k": 1, "seconds": 1.0, "threads": [1], "test": (0.5, 0.0), "val": (0.5, 0.0)}
    report.write_tables({"mlp": {100: cell}}, (100,), tmp_path / "one", "t", "cmd")
    md = (tmp_path / "one.md").read_text()
    assert md.count("## Kendall") == 1 and "single accuracy label" in md
    report.write_tables({"mlp": {100: {**cell, "val": (0.6, 0.0)}}}, (100,), tmp_path / "two", "t", "cmd")
    md = (tmp_path / "two.md").read_text()
    assert md.count("## Kendall") == 2 and "0.6000 (k=1)" in md
