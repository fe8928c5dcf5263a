"""Predictor-guided search and its baselines: the loop finds the optimum of a toy table, resumes to the same
queries, and refuses bad arguments in one line."""

import json
import shutil

import numpy as np
import pytest

from nnformer.cli import main
from nnformer.errors import DataError, NNFormerError
from nnformer.search import SearchConfig, SearchSpace, queries_to_optimum, search
from nnformer.spaces.nb201 import OPS, all_arch_strs, arch_to_graph, parse_arch_str
from nnformer.vocab import NB201

TINY = {"n_layers": 1, "dim": 16, "steps": 60}


@pytest.fixture(scope="module")
def toy():
    """300 NB201 cells whose 'accuracy' is 10 x the number of 3x3 convolutions minus 3 x the 'none' edges (a rule a
    predictor can learn from the graph); one cell is best, and its test accuracy is the best too."""
    strs = list(all_arch_strs())[::52][:300]
    ops = np.array([[OPS.index(o) for o in parse_arch_str(s)] for s in strs])
    val = 10.0 * (ops == OPS.index("nor_conv_3x3")).sum(1) - 3.0 * (ops == OPS.index("none")).sum(1)
    val += np.linspace(0, 0.5, len(strs))  # ties broken: a unique optimum
    codes = ops

    def neighbours(i):
        d = (codes != codes[i]).sum(1)
        d[i] = 99
        return np.flatnonzero(d == d.min())

    return SearchSpace("toy", [arch_to_graph(s) for s in strs], val, val + 1.0, neighbours, NB201)


@pytest.mark.parametrize("method", ["nnformer", "nnformer-warm", "evolution"])
def test_search_finds_the_optimum_of_a_toy_table(toy, method):
    rows = search(toy, SearchConfig(method=method, queries=60, seed=0), settings=TINY, progress=False)
    assert len(rows) == 60 and len({r["index"] for r in rows}) == 60  # no cell queried twice
    assert queries_to_optimum(rows, toy.test.max()) is not None
    assert rows[-1]["best_test"] == toy.test.max() and rows[-1]["best_val"] == toy.val.max()
    best = [r["best_val"] for r in rows]
    assert best == sorted(best)  # the returned cell only gets better


def test_mutation_acquisition_queries_near_the_best_cells_and_finds_the_optimum(toy):
    cfg = SearchConfig(method="nnformer", queries=60, seed=0, acquisition="mutation", parents=3)
    rows = search(toy, cfg, settings=TINY, progress=False)
    assert len({r["index"] for r in rows}) == 60 and rows[-1]["best_test"] == toy.test.max()
    for r in rows[10:20]:  # the first predictor round: within two mutations of the 3 best of the 10 random cells
        top = sorted(rows[:10], key=lambda q: -q["val"])[:3]
        near = {int(c) for t in top for n in toy.neighbours(t["index"]) for c in [n, *toy.neighbours(int(n))]}
        assert r["index"] in near


def test_ensemble_acquisition_draws_around_the_ensemble_mean_and_finds_the_optimum(toy):
    from nnformer.search import thompson_scores

    preds = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0], [10.0, 30.0, 20.0, 40.0]])
    a = thompson_scores(preds, np.random.default_rng(0))
    b = thompson_scores(preds[[0, 1, 0]], np.random.default_rng(0))  # members that agree: no spread, no noise
    z = (preds[0] - preds[0].mean()) / preds[0].std()
    assert np.allclose(b, z) and not np.allclose(a, z)
    assert np.array_equal(a, thompson_scores(preds, np.random.default_rng(0)))  # seeded
    cfg = SearchConfig(method="nnformer", queries=60, seed=0, ensemble=2)
    rows = search(toy, cfg, settings=TINY, progress=False)
    assert len({r["index"] for r in rows}) == 60 and rows[-1]["best_test"] == toy.test.max()
    single = search(toy, SearchConfig(method="nnformer", queries=60, seed=0), settings=TINY, progress=False)
    assert [r["index"] for r in rows[:10]] == [r["index"] for r in single[:10]]  # the same random start
    assert [r["index"] for r in rows] != [r["index"] for r in single]


def test_search_config_fields_added_later_keep_older_histories_valid(toy, tmp_path):
    from nnformer.search import config_header

    older = config_header(SearchConfig(train_steps=None))  # a history written before these fields existed
    assert "acquisition" not in older and "train_steps" not in older and "parents" not in older
    assert "ensemble" not in older and config_header(SearchConfig(ensemble=3))["ensemble"] == 3
    assert config_header(SearchConfig())["train_steps"] == 300
    assert config_header(SearchConfig(acquisition="mutation"))["acquisition"] == "mutation"
    cfg = SearchConfig(method="random", queries=20)
    search(toy, cfg, history=tmp_path / "h.jsonl", progress=False)
    with pytest.raises(DataError, match="holds another search"):
        search(toy, SearchConfig(method="random", queries=20, acquisition="mutation"), history=tmp_path / "h.jsonl",
               progress=False)


def test_gcn_search_runs_its_rounds(toy):
    rows = search(toy, SearchConfig(method="gcn", queries=25, init=5, per_round=10), settings=TINY, progress=False)
    assert [r["round"] for r in rows] == [0] * 5 + [1] * 10 + [2] * 10 and len({r["index"] for r in rows}) == 25


def test_predictor_guided_search_beats_random_on_the_toy_table(toy):
    cfg = dict(queries=30, init=10, per_round=10)
    ours = [search(toy, SearchConfig(method="nnformer", seed=s, **cfg), settings=TINY, progress=False)[-1]
            for s in range(2)]
    rand = [search(toy, SearchConfig(method="random", seed=s, **cfg), progress=False)[-1] for s in range(2)]
    assert np.mean([r["best_val"] for r in ours]) > np.mean([r["best_val"] for r in rand])


def test_a_resumed_search_makes_the_same_queries(toy, tmp_path):
    cfg = SearchConfig(method="nnformer", queries=30, seed=3)
    full = search(toy, cfg, settings=TINY, progress=False, history=tmp_path / "full.jsonl")
    lines = (tmp_path / "full.jsonl").read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:11]) + "\n")  # header + the first round (10 queries)
    resumed = search(toy, cfg, settings=TINY, progress=False, history=tmp_path / "cut.jsonl")
    assert [r["index"] for r in resumed] == [r["index"] for r in full]
    with pytest.raises(DataError, match="holds another search"):
        search(toy, SearchConfig(method="random", queries=30, seed=3), history=tmp_path / "full.jsonl",
               progress=False)


def test_search_config_refusals():
    for kwargs, msg in (({"method": "bayes"}, "unknown search method"), ({"queries": 0}, "at least 1"),
                        ({"init": 20, "queries": 10}, "cannot exceed queries"),
                        ({"sample": 30, "population": 20}, "cannot exceed population"),
                        ({"acquisition": "ucb"}, "unknown acquisition"), ({"train_steps": 0}, "train_steps"),
                        ({"parents": 0}, "at least 1"), ({"ensemble": 0}, "at least 1"),
                        ({"method": "nnformer-warm", "ensemble": 3}, "warm start"),
                        ({"warm_steps": 10, "ensemble": 2}, "warm start")):
        with pytest.raises(NNFormerError, match=msg):
            SearchConfig(**kwargs)


@pytest.mark.slow
def test_search_cli_on_nb201_resumes_and_refuses_bad_arguments(data_dir, tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["search", "--method", "evolution", "--queries", "40", "--seed", "1", "--out", str(out), "--data-dir",
            str(data_dir), "--quiet"]
    assert main(argv) == 0
    res = json.loads((out / "result.json").read_text())
    hist = (out / "history.jsonl").read_text()
    assert res["returned_test"] == max((json.loads(ln) for ln in hist.splitlines()[1:]),
                                       key=lambda r: r["val"])["test"]
    assert res["returned_arch"].startswith("|") and len(hist.splitlines()) == 41
    assert main(argv) == 0 and (out / "history.jsonl").read_text() == hist  # done: nothing more queried
    capsys.readouterr()
    for bad, msg in ((["--method", "bayes"], "unknown search method"),
                     (["--init", "50"], "cannot exceed queries"),
                     (["--queries", "20000"], "exceeds the 15,625 cells"),
                     (["--set", "nope=1"], "nope"),
                     (["--latency-bound", "upper"], "--latency-bound needs --max-latency"),
                     (["--method", "nnformer-warm", "--ensemble", "2"], "warm start")):
        args = argv[:]
        for k, v in zip(bad[::2], bad[1::2]):
            if k in args:
                args[args.index(k) + 1] = v
            else:
                args += [k, v]
        assert main(args) == 2, bad
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err
    assert main(argv[:argv.index("--seed") + 1] + ["2"] + argv[argv.index("--seed") + 2:]) == 2  # another search
    assert "holds another search" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_search_writes_tables_and_skips_what_is_done(data_dir, tmp_path, capsys):
    argv = ["reproduce", "search", "--methods", "random,evolution", "--seeds", "2", "--queries", "25",
            "--datasets", "cifar10", "--out", str(tmp_path), "--data-dir", str(data_dir), "--quiet"]
    assert main(argv) == 0
    root = tmp_path / "search-nb201"
    table = (root / "search.md").read_text()
    assert "| `random` | 2 |" in table and "| `evolution` | 2 |" in table and (root / "search.png").is_file()
    from nnformer.harness.search_sweep import PACK

    store = root / "cifar10" / PACK  # the complete histories, packed
    assert sorted(p.name for p in (root / "cifar10").iterdir()) == [PACK]
    before = store.read_bytes()
    assert main(argv) == 0 and store.read_bytes() == before  # nothing run again, the same store
    one = argv[:2] + ["--methods", "random"] + argv[4:]
    assert main(one) == 0 and "| `evolution` | 2 |" in (root / "search.md").read_text()  # other rows kept
    other = argv[:argv.index("cifar10")] + ["cifar100"] + argv[argv.index("cifar10") + 1:]
    assert main(other[:2] + ["--methods", "random"] + other[4:]) == 0
    table = (root / "search.md").read_text()
    assert "## cifar10 (" in table and "## cifar100 (" in table  # another dataset's sweep keeps this one's section
    shutil.rmtree(root / "cifar10")
    assert main(argv + ["--from-cache"]) == 0 and not (root / "cifar10").exists()
    assert main(argv[:2] + ["--methods", "annealing"] + argv[4:]) == 2
    capsys.readouterr()
    assert main(argv + ["--latency-bound", "upper"]) == 2  # a bound without a budget: refused, not ignored
    assert "--latency-bound needs --max-latency" in capsys.readouterr().err


def _slow_cells(space):
    """A made-up latency: 1 ms per 3x3 convolution plus 0.1 ms per cell index step (so the best cells are slow)."""
    return np.array([1.0 + sum(o == "nor_conv_3x3" for o in g.ops) for g in space.graphs])


@pytest.mark.parametrize("method", ["nnformer", "evolution", "random"])
def test_a_latency_budget_restricts_every_method_to_the_cells_predicted_within_it(toy, method):
    from nnformer.search import constrain_latency, constraint_report

    predicted = _slow_cells(toy)
    true = predicted * np.where(np.arange(len(predicted)) % 7 == 0, 1.5, 1.0)  # the predictor misses 1 cell in 7
    space = constrain_latency(toy, predicted, 3.0, true_ms=true, device="toy-device", predictor="made-up")
    assert space.constraint["cells_allowed"] == int((predicted <= 3.0).sum()) < len(toy.graphs)
    rows = search(space, SearchConfig(method=method, queries=40, seed=1), settings=TINY, progress=False)
    assert all(predicted[r["index"]] <= 3.0 for r in rows) and len({r["index"] for r in rows}) == 40
    assert all(r["latency"] == true[r["index"]] and r["best_latency"] == true[r["best_index"]] for r in rows)
    rep = constraint_report(space, rows)
    best = rows[-1]["best_index"]
    assert rep["returned_latency_ms"] == true[best] and rep["holds"] == (true[best] <= 3.0)
    feasible = true <= 3.0
    assert rep["best_feasible_test"] == toy.test[feasible].max()
    assert rep["gap_to_best_feasible"] == pytest.approx(toy.test[feasible].max() - toy.test[best])
    assert rep["allowed_truly_feasible"] == pytest.approx(feasible[predicted <= 3.0].mean())
    unconstrained = search(toy, SearchConfig(method=method, queries=40, seed=1), settings=TINY, progress=False)
    assert any(predicted[r["index"]] > 3.0 for r in unconstrained)  # the budget is what kept them out


def test_latency_budget_refusals(toy):
    from nnformer.search import constrain_latency

    with pytest.raises(NNFormerError, match="fastest is predicted at 1"):
        constrain_latency(toy, _slow_cells(toy), 0.5)
    with pytest.raises(NNFormerError, match="positive"):
        constrain_latency(toy, _slow_cells(toy), -1.0)
    with pytest.raises(DataError, match="predicted latencies"):
        constrain_latency(toy, _slow_cells(toy)[:10], 3.0)
    small = constrain_latency(toy, _slow_cells(toy), 1.0)
    with pytest.raises(NNFormerError, match="exceeds the"):
        search(small, SearchConfig(method="random", queries=small.constraint["cells_allowed"] + 1), progress=False)


@pytest.mark.slow
def test_latency_constrained_search_cli(data_dir, tmp_path, capsys):
    out = tmp_path / "c"
    argv = ["search", "--method", "evolution", "--queries", "20", "--max-latency", "3", "--latency-device", "fpga",
            "--out", str(out), "--data-dir", str(data_dir), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    res = json.loads((out / "result.json").read_text())
    c = res["constraint"]
    assert c["device"] == "fpga" and c["predictor"] == "help-nb201-fpga" and 0 < c["cells_allowed"] < 15625
    assert c["holds"] == (c["returned_latency_ms"] <= 3.0) and "latency on fpga: budget 3 ms" in printed
    assert "predicted latency on fpga <= 3 ms" in res["space"]
    capsys.readouterr()
    base = argv[:argv.index("--max-latency")] + argv[argv.index("--out"):]
    for bad, msg in ((["--max-latency", "3"], "go together"),
                     (["--latency-device", "fpga"], "go together"),
                     (["--max-latency", "-2", "--latency-device", "fpga"], "positive finite number"),
                     (["--max-latency", "3", "--latency-device", "abacus"], "unknown HELP device"),
                     (["--max-latency", "0.01", "--latency-device", "fpga"], "no cell of nb201-cifar10"),
                     (["--max-latency", "3", "--latency-device", "fpga", "--latency-predictor", str(tmp_path / "x.pt")],
                      "no checkpoint"),
                     (["--max-latency", "3", "--latency-device", "fpga", "--space", "nb101"], "needs NAS-Bench-201")):
        assert main(base[:-1] + ["--out", str(tmp_path / "bad"), "--quiet"] + bad) == 2, bad
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err
    assert main(["reproduce", "search", "--max-latency", "fpga", "--out", str(tmp_path), "--quiet"]) == 2
    assert main(["reproduce", "search", "--max-latency", "abacus:3", "--out", str(tmp_path), "--quiet"]) == 2


@pytest.mark.slow
def test_reproduce_search_under_a_latency_budget_writes_its_own_table(data_dir, tmp_path):
    argv = ["reproduce", "search", "--methods", "random,evolution", "--seeds", "2", "--queries", "25",
            "--datasets", "cifar10", "--max-latency", "fpga:3", "--out", str(tmp_path), "--data-dir", str(data_dir),
            "--quiet"]
    assert main(argv) == 0
    root = tmp_path / "search-nb201-latency"
    from nnformer.harness.search_sweep import histories

    stored = histories(root / "cifar10-fpga-3ms")
    rows = stored["random-seed1.jsonl"][1:]
    assert len(rows) == 25 and all("latency" in r for r in rows)
    assert not (tmp_path / "search-nb201").exists()  # the unconstrained histories are elsewhere
    table = (root / "search.md").read_text()
    assert "## cifar10 on fpga, at most 3 ms" in table and "| `random` | 2 |" in table
    last = [stored[f"random-seed{s}.jsonl"][-1] for s in range(2)]
    met = sum(r["best_latency"] <= 3.0 for r in last)
    assert f"| {met}/2 |" in table.split("| `random` | 2 |")[1].splitlines()[0]


def test_target_lines_give_the_difference_to_a_baseline_with_its_interval():
    from nnformer.harness.search_sweep import _difference

    assert _difference(np.array([1.0, 2.0, 3.0]), np.zeros(3)) == "+2.00 ± 1.13"  # 1.96 * sqrt(1/3 + 0)
    assert _difference(np.array([1.0, np.nan, 3.0]), np.array([2.0, 4.0])) == "-1.00 ± 2.77"  # nan: seed not done
    assert _difference(np.array([1.0]), np.array([2.0, 4.0])) == "-2.00"  # one seed: no interval


def test_complete_histories_pack_into_one_store_and_read_back_the_same(tmp_path):
    """A directory's complete search histories move into one gzip store (same bytes for the same histories); the
    sweep's `done` and the tables' `load_runs` read it as they read the loose files, and a search still in progress
    stays loose."""
    import gzip

    from nnformer.harness import search_sweep as ss
    from nnformer.search import SearchConfig, config_header

    d = ss.history_path(tmp_path, "nb201", "cifar10", "x", 0).parent
    d.mkdir(parents=True)

    def write(method, seed, queries):
        head = {"format": "nnformer-search/1", "config": config_header(SearchConfig(method=method, queries=12,
                                                                                    seed=seed)), "settings": {}}
        rows = [{"query": q + 1, "best_test": 90.0 + seed + q / 10} for q in range(queries)]
        (d / f"{method}-seed{seed}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [head, *rows]))

    for seed in (0, 1, 10, 2):
        write("random", seed, 12)
    write("evolution", 0, 2)  # in progress
    before = ss.load_runs(tmp_path, "nb201", "cifar10", ("random", "evolution"), 12)
    assert [r[0]["best_test"] for r in before["random"]] == [90.0, 91.0, 92.0, 100.0] and before["evolution"] == []
    assert ss.pack(d, 12) == 4
    assert sorted(p.name for p in d.iterdir()) == ["evolution-seed0.jsonl", ss.PACK]
    assert ss.load_runs(tmp_path, "nb201", "cifar10", ("random", "evolution"), 12) == before
    assert ss.done(d / "random-seed10.jsonl", 12, "random", 10, {})
    assert not ss.done(d / "evolution-seed0.jsonl", 12, "evolution", 0, {})
    assert not ss.done(d / "random-seed3.jsonl", 12, "random", 3, {})
    first = (d / ss.PACK).read_bytes()
    write("evolution", 0, 12)  # finished later: packed beside the others, which stay as they were
    assert ss.pack(d, 12) == 1 and ss.pack(d, 12) == 0
    names = [json.loads(ln)["file"] for ln in gzip.decompress((d / ss.PACK).read_bytes()).splitlines()]
    assert names == ["evolution-seed0.jsonl", "random-seed0.jsonl", "random-seed1.jsonl", "random-seed2.jsonl",
                     "random-seed10.jsonl"]
    (d / ss.PACK).unlink()
    for seed in (0, 1, 10, 2):
        write("random", seed, 12)
    ss.pack(d, 12)
    again = gzip.decompress((d / ss.PACK).read_bytes()).splitlines()
    assert [ln for ln in again if b"random" in ln] == [ln for ln in gzip.decompress(first).splitlines()]
