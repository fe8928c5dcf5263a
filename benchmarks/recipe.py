"""Recipe study on NAS-Bench-201 (TNASP split): tau over all 15,625 cells against training time, per recipe.

    python benchmarks/recipe.py run --recipe fast --n 156 --mask-mode released --threads 1
    python benchmarks/recipe.py run --recipe fast --n 156 --steps 7000 --threads 1     # override the step budget
    python benchmarks/recipe.py plot                                                   # table + curves of all runs

`run` trains one recipe (a name from nnformer.recipes plus optional overrides) and, at every validation, scores the
current EMA model on all cells (test and validation labels); that scoring is not counted as training time. Each run
is stored as benchmarks/results/recipe-study/runs/<key>.json and skipped when it exists (delete the file to
rerun); while it trains, a checkpoint under runs/recipe-checkpoints/ lets the same command, restarted, resume a
killed run, and the curve so far is kept in benchmarks/results/recipe-study/runs/partial/<key>.json (small,
committed): a run longer than the machine stays up (the released recipe at N=781 took 4.5 h of training here,
1 thread beside another run) keeps its measured points even when its checkpoint, too large to commit, is gone with
the machine. `plot` writes benchmarks/results/recipe-study/recipe.md and recipe_curves.png from the stored runs,
beside the authors' released code's curve at N=156 measured on this kind of machine (docs/method.md section 9).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, machine, now  # noqa: E402
from nnformer.io import atomic_write_text  # noqa: E402
from nnformer.model import MASK_MODES  # noqa: E402

STUDY = RESULTS / "recipe-study"
RUNS = STUDY / "runs"
PARTIAL = RUNS / "partial"
CHECKPOINTS = Path(__file__).resolve().parents[1] / "runs" / "recipe-checkpoints"  # not committed (runs/ is ignored)
# The released code with the released recipe at N=156, released masks, 2 cores (docs/method.md section 9):
# (training minutes, tau against the test label, tau against the validation label) after 400/607/1295/3000 epochs.
AUTHORS_N156 = [(13, 0.773, 0.774), (20, 0.780, 0.782), (43, 0.804, 0.822), (101, 0.800, 0.819)]


def run_key(a) -> str:
    parts = [a.recipe, f"N{a.n}", a.mask_mode, f"seed{a.seed}"]
    for name in ("steps", "layers", "dim", "lr", "batch_size", "min_epochs"):
        v = getattr(a, name)
        if v is not None:
            parts.append(f"{name.replace('_', '')}{v:g}")
    if a.no_bucket:
        parts.append("nobucket")
    if getattr(a, "nb201_graph", "pruned") != "pruned":
        parts.append(f"graph{a.nb201_graph}")
    parts += [f"{k.replace('_', '')}{v:g}" if isinstance(v, float) else f"{k.replace('_', '')}{v}"
              for k, v in sorted(settings(a).items())]
    return "-".join(parts)


def settings(a) -> dict:
    """``--set KEY=VALUE`` pairs: any field of NNFormerConfig or TrainConfig (or a recipe key), typed as the field."""
    from nnformer.recipes import RecipeError, parse_settings, typed_settings

    try:
        return typed_settings(parse_settings(a.set))
    except RecipeError as e:
        raise SystemExit(f"recipe.py: --set: {e}") from None


def cmd_run(a) -> None:
    import dataclasses

    import torch

    from nnformer.batching import EncodedGraphs
    from nnformer.metrics import kendall_tau
    from nnformer import Predictor
    from nnformer.harness.benchmark_data import load_space
    from nnformer.protocols import tnasp_split
    from nnformer.recipes import get_recipe
    from nnformer.train import predict_encoded

    path = RUNS / f"{run_key(a)}.json"
    if path.is_file():
        print(f"{path} exists; skipped")
        return
    torch.set_num_threads(a.threads)
    space = load_space("nb201", a.data_dir)
    if a.nb201_graph == "full":  # the released preprocessing's graphs: 8 nodes, `none` nodes kept
        from nnformer.data.nb201 import load_nb201
        from nnformer.spaces.nb201 import arch_to_graph

        space.graphs = [arch_to_graph(s, prune_none=False) for s in load_nb201(a.data_dir).arch_strs]
    sets = settings(a)  # for the overrides here and both records below (run_key parses it for the file name)
    over = {"mask_mode": a.mask_mode, "n_layers": a.layers, "dim": a.dim, "lr": a.lr, "batch_size": a.batch_size,
            "bucket": False if a.no_bucket else None, "steps": a.steps, "seed": a.seed, "evals": a.points}
    over = {k: v for k, v in over.items() if v is not None}
    # the script's own rule: a --steps budget keeps the recipe's least number of epochs unless --min-epochs is given
    over["min_epochs"] = a.min_epochs if a.min_epochs is not None else get_recipe(a.recipe).resolve(a.n).min_epochs
    predictor = Predictor(a.recipe, settings={**over, **sets}, progress=False)
    sp = tnasp_split(len(space.graphs), a.n, space.n_val)
    _, mcfg, tcfg = predictor.plan([space.graphs[i] for i in sp.train])
    steps, epochs = predictor.recipe_at(a.n).steps, tcfg.epochs
    everything = EncodedGraphs(space.graphs)
    y = space.train_label
    taus = [f"tau_{k}" for k in space.test_labels]

    def point(rec: dict) -> dict:  # one point of the tau-vs-time curve
        return {k: rec.get(k) for k in ["epoch", "step", "seconds", "val_tau", *taus]}

    # a long run (the released recipe at N=781 takes hours) resumes from its checkpoint when restarted
    ck = CHECKPOINTS / f"{path.stem}.pt"
    resumed = ck.is_file()
    head = {"key": path.stem, "command": command(), "machine": machine(), "recipe": a.recipe, "n": a.n,
            "seed": a.seed, "steps": steps, "epochs": epochs, "set": sets, "nb201_graph": a.nb201_graph,
            "model_config": dataclasses.asdict(mcfg), "train_config": dataclasses.asdict(tcfg)}
    so_far = (in_progress(ck) or {"curve": []})["curve"] if resumed else []

    def on_eval(rec, model):
        p = predict_encoded(model, everything)
        rec.update({f"tau_{k}": kendall_tau(p, v) for k, v in space.test_labels.items()})  # kept in the checkpoint
        so_far.append(point(rec))
        print(json.dumps(so_far[-1]), flush=True)
        total = round(rec["step"] * epochs / rec["epoch"])  # of the whole run
        _write_json(PARTIAL / f"{path.stem}.json", {**head, "date": now(), "total_steps": total, "curve": so_far})

    t = time.perf_counter()
    predictor.fit([space.graphs[i] for i in sp.train], y[sp.train], [space.graphs[i] for i in sp.val], y[sp.val],
                  checkpoint=ck, on_eval=on_eval)
    res = predictor.result_
    curve = [point(rec) for rec in res.history if all(k in rec for k in taus)]
    p = predictor.predict(everything)
    out = {"key": path.stem, "command": command(), "date": now(), "machine": machine(), "recipe": a.recipe,
           "n": a.n, "seed": a.seed, "steps": steps, "epochs": epochs, "set": sets, "nb201_graph": a.nb201_graph,
           "total_steps": res.history[-1]["step"], "train_s": res.history[-1]["seconds"],
           "wall_s": time.perf_counter() - t, "resumed": resumed, "best_epoch": res.best_epoch,
           **{f"tau_{k}": kendall_tau(p, v) for k, v in space.test_labels.items()},
           "model_config": dataclasses.asdict(mcfg), "train_config": dataclasses.asdict(tcfg), "curve": curve}
    print("RESULT", json.dumps({k: v for k, v in out.items() if k not in ("curve", "machine", "model_config",
                                                                          "train_config")}))
    _write_json(path, out)
    ck.unlink(missing_ok=True)
    (PARTIAL / f"{path.stem}.json").unlink(missing_ok=True)


def _write_json(path: Path, obj: dict) -> None:
    from nnformer.io import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def in_progress(path: Path) -> dict | None:
    """A run still training, read from its checkpoint: the curve so far, in the form of a finished run's file."""
    from nnformer.train import load_checkpoint

    ck = load_checkpoint(path)
    st = ck.get("train_state")
    curve = [r for r in (st or {}).get("history", []) if "tau_test" in r and "tau_val" in r]
    if not curve:
        return None
    m = re.search(r"-N(\d+)-.*seed(\d+)", path.stem)
    tc = st["train_config"]
    return {"key": path.stem, "recipe": path.stem.split("-")[0], "n": int(m.group(1)), "seed": int(m.group(2)),
            "epochs": tc["epochs"],
            "total_steps": round(curve[-1]["step"] * tc["epochs"] / curve[-1]["epoch"]),  # of the whole run
            "model_config": ck["model_config"],
            "train_config": tc, "curve": curve}


def unfinished(done: set[str]) -> list[dict]:
    """Runs not finished: from their checkpoint where it is here (resumable), else from their committed partial curve;
    the one that got further wins."""
    found: dict[str, dict] = {}
    for p in sorted(PARTIAL.glob("*.json")):
        found[p.stem] = {**json.loads(p.read_text()), "resumable": False}
    for p in sorted(CHECKPOINTS.glob("*.pt")):
        r, kept = in_progress(p), found.get(p.stem)
        if r is not None and (kept is None or r["curve"][-1]["epoch"] >= kept["curve"][-1]["epoch"]):
            found[p.stem] = {**(kept or {}), **r, "resumable": True}
    return [r for k, r in sorted(found.items()) if k not in done and r.get("curve")]


def label(run: dict) -> str:
    m, t = run["model_config"], run["train_config"]
    batches = (f"size-bucketed batches of <= {t['batch_size']}" if t["bucket"] else
               f"batches of {t['batch_size']} mixed sizes")
    extra = "".join(f", {k} {v:g}" if isinstance(v, float) else f", {k} {v}" for k, v in run.get("set", {}).items()
                    if k not in ("n_layers", "dim", "mask_mode", "lr", "batch_size", "bucket"))
    if run.get("nb201_graph", "pruned") != "pruned":
        extra += f", {run['nb201_graph']} 8-node graphs"
    return (f"{m['n_layers']}x{m['dim']}{extra}, {m['mask_mode']} masks, lr {t['lr']:g}, {batches}, "
            f"{run['epochs']} epochs = {run['total_steps']} steps (recipe {run['recipe']}"
            f"{' + overrides' if len(run['key'].split('-')) > 4 else ''})")


def seed_summary(runs: list[dict]) -> list[str]:
    """Mean +- sample std over seeds of every setting run with more than one seed."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["n"], label(r)), []).append(r)
    rows = [(k, g) for k, g in sorted(groups.items()) if len(g) > 1]
    if not rows:
        return []
    out = ["", "Settings run with more than one seed (mean +- sample std over the seeds):", "",
           "| run | N | seeds | tau (test label) | tau (val label) | training time (mean) |",
           "|---|---|---|---|---|---|"]
    for (n, lab), g in rows:
        t, v = np.array([r["tau_test"] for r in g]), np.array([r["tau_val"] for r in g])
        out.append(f"| {lab} | {n} | {', '.join(str(r['seed']) for r in sorted(g, key=lambda r: r['seed']))} | "
                   f"{t.mean():.4f} +- {t.std(ddof=1):.4f} | {v.mean():.4f} +- {v.std(ddof=1):.4f} | "
                   f"{np.mean([r['train_s'] for r in g]) / 60:.1f} min |")
    return out


def seed_note(run: dict) -> str:
    """Legend suffix telling repeated runs of one setting apart (seed 0 is the default and left unsaid)."""
    return f", seed {run['seed']}" if run["seed"] else ""


def cmd_plot(a) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]
    partial = unfinished({p.stem for p in RUNS.glob("*.json")})
    lines = [
        "# Recipe study: NAS-Bench-201, TNASP split, tau over all 15,625 cells",
        "",
        f"Written by `{command()}` on {now()} from the runs in `benchmarks/results/recipe-study/runs/` (one run per "
        "row; the",
        "command that made a run is in its file; a resumed run's training time adds up its processes). Training",
        "time excludes the scoring of all cells at each point.",
        "Runs were made two at a time with 1 torch thread each on the 2-core machine, as the reproduce sweeps run.",
        "Reference: the authors' released code and recipe (12 x 160, lr 1e-4, 3,000 epochs, consistency copy,",
        "released masks) at N=156 on this kind of machine, docs/method.md section 9: tau 0.800 (test label) / 0.819",
        "(val label) after 101 min; 0.804 / 0.822 at its best point (1,295 epochs, 43 min).",
        "",
        "| run | N | seed | tau (test label) | tau (val label) | training time | machine, threads |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r["n"], label(r), r["seed"])):
        lines.append(f"| {label(r)} | {r['n']} | {r['seed']} | {r['tau_test']:.4f} | {r['tau_val']:.4f} | "
                     f"{r['train_s'] / 60:.1f} min | {r['machine']['cpu']}, {r['machine']['torch_threads']} |")
    lines.append("| released code, released recipe (authors) | 156 | - | 0.800 | 0.819 | 101 min | AMD EPYC, 2 |")
    for r in partial:
        c = r["curve"][-1]
        state = ("checkpoint in runs/recipe-checkpoints/: rerun its command to go on" if r["resumable"] else
                 "its checkpoint, too large to commit, is not here: a rerun starts over")
        where = f"{r['machine']['cpu']}, {r['machine']['torch_threads']}" if "machine" in r else "this machine"
        lines.append(f"| {label(r)}, **unfinished: epoch {c['epoch']} of {r['epochs']}** ({state}) | {r['n']} | "
                     f"{r['seed']} | {c['tau_test']:.4f} | {c['tau_val']:.4f} | {c['seconds'] / 60:.1f} min so far | "
                     f"{where} |")
    lines += seed_summary(runs)
    atomic_write_text(STUDY / "recipe.md", "\n".join(lines) + "\n")
    ns = sorted({r["n"] for r in runs + partial} | {156})
    # runs with --set overrides (one-off settings) are drawn thin and grey under one legend entry: their numbers
    # are in recipe.md, and a legend line each would bury the curves
    entries = max(sum(1 for r in runs + partial if r["n"] == n and not r.get("set")) + 3 for n in ns)
    fig, axes = plt.subplots(1, len(ns), figsize=(6.5 * len(ns), 5.0 + 0.14 * entries), dpi=110, squeeze=False)
    for ax, n in zip(axes[0], ns):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # 20 distinct colours: the default 10 repeat at one N
        others = [r for r in runs if r["n"] == n and r.get("set")]
        for i, r in enumerate(others):
            c = r["curve"]
            ax.plot([p["seconds"] / 60 for p in c], [p["tau_test"] for p in c], color="0.6", lw=0.8, zorder=1,
                    label=f"{len(others)} run{'s' * (len(others) > 1)} with other settings (--set; recipe.md)"
                    if i == 0 else None)
        for r in [r for r in runs if r["n"] == n and not r.get("set")]:
            c = r["curve"]
            ax.plot([p["seconds"] / 60 for p in c], [p["tau_test"] for p in c], marker=".",
                    label=label(r) + seed_note(r))
        for r in [r for r in partial if r["n"] == n]:
            c = r["curve"]
            ax.plot([p["seconds"] / 60 for p in c], [p["tau_test"] for p in c], marker=".", ls="--",
                    label=f"{label(r)}{seed_note(r)} (unfinished)")
        if n == 156:
            ax.plot([m for m, _, _ in AUTHORS_N156], [t for _, t, _ in AUTHORS_N156], marker="s", color="k",
                    label="released code + recipe (authors, method.md s.9)")
        ax.set_xscale("log")
        longest = max([p["seconds"] / 60 for r in runs + partial if r["n"] == n for p in r["curve"]] + [10])
        ticks = [t for t in (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if t <= max(longest, 100 * (n == 156))]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(bottom=max(ax.get_ylim()[0], 0.70))
        ax.set_xlabel("training time (min, log scale)")
        ax.set_ylabel("Kendall tau, all cells (test label)")
        ax.set_title(f"NB201, N={n}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(left=0.05, right=0.98, top=1 - 0.4 / height, bottom=(0.9 + 0.13 * entries) / height,
                        wspace=0.25)
    fig.savefig(STUDY / "recipe_curves.png")
    print(f"wrote {STUDY / 'recipe.md'} and {STUDY / 'recipe_curves.png'} ({len(runs)} runs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train one recipe and store its tau-vs-time curve")
    r.add_argument("--recipe", default="fast")
    r.add_argument("--n", type=int, default=156)
    r.add_argument("--mask-mode", default="paper", choices=MASK_MODES)
    r.add_argument("--steps", type=int, default=None, help="override the recipe's step budget")
    r.add_argument("--layers", type=int, default=None)
    r.add_argument("--dim", type=int, default=None)
    r.add_argument("--lr", type=float, default=None)
    r.add_argument("--batch-size", type=int, default=None)
    r.add_argument("--min-epochs", type=int, default=None)
    r.add_argument("--no-bucket", action="store_true", help="mixed-size (padded) batches instead of size buckets")
    r.add_argument("--nb201-graph", choices=["pruned", "full"], default="pruned",
                   help="NB201 cells as pruned node graphs (default, docs/method.md s.1) or the released "
                        "preprocessing's fixed 8-node graphs with `none` nodes kept")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any NNFormerConfig or TrainConfig field, e.g. dropout=0 or mlp_ratio=2 (repeatable)")
    r.add_argument("--points", type=int, default=10, help="validations (and curve points) per run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--data-dir", default=None)
    sub.add_parser("plot", help="write recipe.md and recipe_curves.png from the stored runs")
    a = ap.parse_args()
    cmd_run(a) if a.cmd == "run" else cmd_plot(a)


if __name__ == "__main__":
    main()
