import json

import numpy as np
import pytest

from nnformer import reproduce as rp
from nnformer.cli import main
from nnformer.recipes import DEFAULT_RECIPE


@pytest.fixture
def tiny_recipe(monkeypatch):
    from nnformer.recipes import RECIPES

    monkeypatch.setitem(RECIPES, DEFAULT_RECIPE, {"model": {"n_layers": 1, "dim": 16}, "steps": 0, "min_epochs": 3,
                                                  "train": {"lr": 2e-3, "w_cons": 0.0}})


def test_sweep_caches_resumes_and_writes_tables(data_dir, tmp_path, tiny_recipe, monkeypatch, capsys):
    args = ["reproduce", "accuracy", "--space", "nb201", "--methods", "nnformer,mlp", "--ns", "40,80", "--seeds", "2",
            "--out", str(tmp_path), "--data-dir", str(data_dir), "--quiet", "--threads", "1"]
    assert main(args) == 0
    cache = tmp_path / "cache" / "nb201-cifar10" / DEFAULT_RECIPE
    files = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*.json"))
    assert files == [f"{m}/N{n}-seed{s}.json" for m in ("mlp", "nnformer") for n in (40, 80) for s in (0, 1)]
    rec = json.loads((cache / "nnformer/N40-seed1.json").read_text())
    assert rec["n_train"] == 40 and rec["seed"] == 1 and -1 <= rec["tau_test"] <= 1 and rec["epochs"] == 3
    md = (tmp_path / "nb201_accuracy.md").read_text()
    assert "NN-Former (paper masks)" in md and "(k=2)" in md and "Command: `nnformer reproduce" in md
    assert (tmp_path / "nb201_accuracy_tau_vs_n.png").stat().st_size > 5000
    csv_rows = (tmp_path / "nb201_accuracy.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 4
    # the cached mean is what the table prints
    taus = [json.loads((cache / f"nnformer/N40-seed{s}.json").read_text())["tau_test"] for s in (0, 1)]
    assert f"{np.mean(taus):.4f} ± {np.std(taus, ddof=1):.4f} (k=2)" in md
    assert "Runs used 1 torch thread(s) each, with 1 run(s) at a time" in md and "The 8 runs took " in md

    # a rerun trains nothing: every result comes from the cache
    monkeypatch.setattr(rp, "run_one", lambda *a, **k: pytest.fail("re-ran a cached result"))
    assert main(args) == 0
    assert "Incomplete" not in (tmp_path / "nb201_accuracy.md").read_text()

    # --from-cache on a bigger grid writes the partial table, says so, and trains nothing
    (cache / "mlp/N80-seed1.json").unlink()
    assert main(args[:5] + ["nnformer,mlp,gcn"] + args[6:] + ["--from-cache"]) == 0
    md = (tmp_path / "nb201_accuracy.md").read_text()
    assert "Incomplete: 7 of 12 runs are cached" in md and "(`gcn`)" not in md
    mlp_row = next(ln for ln in md.splitlines() if "(`mlp`)" in ln)
    assert "(k=2)" in mlp_row and "(k=1)" in mlp_row
    assert not (cache / "gcn").exists() and not (cache / "mlp/N80-seed1.json").exists()


def test_steps_override_is_cached_and_written_apart(data_dir, tmp_path, tiny_recipe):
    from nnformer.batching import EncodedGraphs
    from nnformer.recipes import recipe_epochs

    args = ["reproduce", "accuracy", "--space", "nb201", "--methods", "mlp", "--ns", "40", "--seeds", "1",
            "--out", str(tmp_path), "--data-dir", str(data_dir), "--quiet", "--threads", "1", "--steps", "9"]
    assert main(args) == 0
    tag = f"{DEFAULT_RECIPE}-steps9"
    rec = json.loads((tmp_path / "cache" / "nb201-cifar10" / tag / "mlp" / "N40-seed0.json").read_text())
    space = rp.nb201_space(data_dir)
    train = EncodedGraphs(space.graphs[:40])
    assert rec["steps"] == 9 and rec["epochs"] == recipe_epochs(DEFAULT_RECIPE, train, steps=9) != 3
    md = (tmp_path / f"nb201_{DEFAULT_RECIPE}_steps9_accuracy.md").read_text()
    assert "replaced by 9 steps" in md and not (tmp_path / "nb201_accuracy.md").exists()
    assert not (tmp_path / "cache" / "nb201-cifar10" / DEFAULT_RECIPE).exists()
    assert main(args[:-1] + ["0"]) == 2  # --steps 0


def test_tables_merge_test_and_val_when_the_data_has_one_label(tmp_path):
    cell = {"k": 1, "seconds": 1.0, "threads": [1], "test": (0.5, 0.0), "val": (0.5, 0.0)}
    rp.write_tables({"mlp": {100: cell}}, (100,), tmp_path / "one", "t", "cmd")
    md = (tmp_path / "one.md").read_text()
    assert md.count("## Kendall") == 1 and "single accuracy label" in md
    rp.write_tables({"mlp": {100: {**cell, "val": (0.6, 0.0)}}}, (100,), tmp_path / "two", "t", "cmd")
    md = (tmp_path / "two.md").read_text()
    assert md.count("## Kendall") == 2 and "0.6000 (k=1)" in md


def test_same_seed_same_result(data_dir, tiny_recipe):
    space = rp.nb201_space(data_dir)
    a = rp.run_one(space, "nnformer-released", 40, 0, DEFAULT_RECIPE, threads=1)
    b = rp.run_one(space, "nnformer-released", 40, 0, DEFAULT_RECIPE, threads=1)
    assert a["tau_test"] == b["tau_test"] and a["tau_val"] == b["tau_val"]


def test_worker_rebuilds_space_and_writes_cache(data_dir, tmp_path, tiny_recipe, monkeypatch):
    monkeypatch.setattr(rp, "_WORKER_SPACE", None)
    path = tmp_path / "r.json"
    rp._worker(("nb201", str(data_dir), "cifar10"), ("mlp", 40, 0, path), DEFAULT_RECIPE, 1)
    rec = json.loads(path.read_text())
    assert rec["method"] == "mlp" and rec["space"] == "nb201-cifar10" and rec["torch_threads"] == 1
    assert rec["code"].startswith("0.")


def test_recipe_epochs_spend_the_step_budget_as_the_recipe_batches():
    from nnformer.batching import EncodedGraphs
    from nnformer.recipes import RECIPES, recipe_epochs
    from nnformer.spaces.nb201 import all_arch_strs, arch_to_graph

    graphs = [arch_to_graph(s) for s in list(all_arch_strs())[::97]][:156]  # cells of every size
    train = EncodedGraphs(graphs)
    eff, fast = RECIPES["efficient"], RECIPES["fast"]
    assert eff["train"]["bucket"] is False
    # mixed sizes: 156 graphs = 2 batches of <= 128 per epoch
    assert recipe_epochs("efficient", train) == -(-eff["steps"] // 2)
    # size buckets: one batch per distinct node count at least
    n_buckets = len(train.batches(128, bucket=True))
    assert n_buckets > 2 and recipe_epochs("fast", train) == max(fast["min_epochs"], -(-fast["steps"] // n_buckets))
    assert recipe_epochs("efficient", train, batch_size=39) == -(-eff["steps"] // 4)
    assert recipe_epochs("released", train) == 3000


def test_recipe_tiers_apply_from_their_threshold_on():
    from nnformer.batching import EncodedGraphs
    from nnformer.recipes import RECIPES, recipe_at, recipe_epochs
    from nnformer.spaces.nb201 import all_arch_strs, arch_to_graph

    base = recipe_at("scaled", 399)
    assert base == recipe_at("efficient", 399) == recipe_at("efficient", 5000)  # no tiers: the same at every N
    assert recipe_at("scaled", 400)["model"]["mlp_ratio"] == 2.0 and recipe_at("scaled", 699)["steps"] == 1875
    at_781 = recipe_at("scaled", 781)
    assert at_781["steps"] == 3000 and at_781["model"] == {"n_layers": 4, "dim": 96, "mlp_ratio": 2.0}
    assert "mlp_ratio" not in RECIPES["scaled"]["model"]  # the tiers never write into the shared recipe
    train = EncodedGraphs([arch_to_graph(s) for s in list(all_arch_strs())[:781]])
    assert recipe_epochs("scaled", train) == -(-3000 // 7) and recipe_epochs("scaled", train, steps=70) == 10


def test_findings_pair_runs_by_seed_and_compare_with_the_paper():
    rec = [{"method": m, "n_train": n, "seed": s, "tau_test": t} for m, n, s, t in [
        ("nnformer", 156, 0, 0.80), ("nnformer", 156, 1, 0.82), ("nnformer-released", 156, 0, 0.79),
        ("nnformer-released", 156, 1, 0.83), ("nnformer-released", 156, 2, 0.10),  # seed 2 has no partner
        ("nnformer", 781, 0, 0.86), ("transformer", 781, 0, 0.90), ("transformer", 156, 0, 0.70)]]
    out = rp.findings(rec, (156, 781, 1563), "nb201-cifar10")
    assert not any("N=1563" in ln for ln in rp.findings(rec, (156, 781), "nb201-cifar10"))
    masks = next(ln for ln in out if "sibling masks" in ln)
    assert "**Yes, at every N run**" in masks and "N=156: +0.0000 ± 0.0141, higher in 1 of 2 seeds" in masks
    assert "N=781" not in masks  # no released run at 781
    tr = next(ln for ln in out if "plain transformer" in ln)
    assert "**No, not at every N run**" in tr and "N=156: +0.1000 (1 seed)" in tr and "N=781: -0.0400 (1 seed)" in tr
    assert not any("GCN baseline" in ln for ln in out)
    paper = [ln for ln in out if ln.startswith("- NN-Former (paper masks) at N=")]
    assert "0.8100 (k=2) vs the paper's 0.804: +0.0060, within 0.02" in paper[0]
    assert "N=1563 (paper 0.890): not run yet" in paper[1]


def test_quick_runs_the_core_methods_unless_told_otherwise(data_dir, tmp_path, monkeypatch):
    grids = []

    def fake_sweep(space, methods, ns, seeds, recipe, root, **kw):
        grids.append((tuple(methods), tuple(ns), tuple(seeds)))
        return []

    monkeypatch.setattr(rp, "sweep", fake_sweep)
    base = ["reproduce", "accuracy", "--space", "nb201", "--quick", "--out", str(tmp_path), "--data-dir",
            str(data_dir), "--quiet"]
    assert main(base) == 0
    assert main(base + ["--methods", "all"]) == 0
    assert main(base + ["--methods", "gcn"]) == 0
    assert grids[0] == (rp.QUICK_METHODS, (156, 781), (0,))
    assert set(rp.QUICK_METHODS) < set(rp.METHODS) and "transformer" in rp.QUICK_METHODS
    assert grids[1][0] == tuple(rp.METHODS) and grids[2][0] == ("gcn",)
