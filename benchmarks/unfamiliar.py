"""The interval for models unlike the training graphs: calibrated on families a predictor never trained on.

    python benchmarks/unfamiliar.py --predictor cpu-zoo-ort-b1@2 --data datasets/here-ort-t1-b1 \
        [--check DIR:DEV.json ...] [--publish VERSION] [--name NAME]

A latency predictor's conformal interval is calibrated on held-out models of the families it trained on. A model
whose operators and sizes the predictor knows, but mixed unlike any of its training graphs
(:attr:`nnformer.latency.coverage.Coverage.mix_only`), is another population: its errors are larger. Here those
models of DIR (a latency dataset of families the predictor never trained on, measured on the predictor's own
device) give the wider interval: the 90% conformal quantile of their absolute log errors. How well it holds is
measured by holding each family out of the calibration in turn (calibrate on the other families' models, score the
held-out family's), pooled over the families.

``--check DIR:DEV.json``: the same models measured on another device (DEV.json its probe): the wider interval,
calibrated on all of DATA, put on that device through the probe's line (docs/method.md section 11), scored there.
``--publish VERSION``: the predictor with the wider interval in its header, shipped as NAME@VERSION (the weights and
the rest of the registry entry unchanged). Writes benchmarks/results/unfamiliar/<NAME>.md, .csv and .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, now  # noqa: E402
from nnformer.io import atomic_write_text  # noqa: E402

OUT = RESULTS / "unfamiliar"
LEVEL = 0.9


def _scored(p, data: str):
    """(graphs, measured ms, families, predicted ms, coverage verdicts) of a dataset."""
    from nnformer.latency.coverage import coverage
    from nnformer.latency.dataset import load_training_set

    rows, graphs, ms, fams = load_training_set(data)
    pred = np.asarray(p.predict(graphs), dtype=np.float64)
    covs = [coverage(p, g, int(r["static"].get("unknown_shapes", 0))) for r, g in zip(rows, graphs)]
    return graphs, np.asarray(ms, dtype=np.float64), np.asarray(fams), pred, covs


def held_out_coverage(err: np.ndarray, fams: np.ndarray, level: float = LEVEL) -> dict:
    """Per family: the share of its models whose absolute log error is within the conformal quantile of the other
    families' models (each family held out of the calibration in turn)."""
    from nnformer.metrics import conformal_quantile

    out = {}
    for f in sorted(set(fams.tolist())):
        rest = err[fams != f]
        if rest.size == 0:
            continue
        q = conformal_quantile(rest, level)
        out[f] = {"n": int((fams == f).sum()), "q": q, "holds": float(np.mean(err[fams == f] <= q) * 100)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--predictor", required=True, help="NAME@VERSION of a shipped latency predictor")
    ap.add_argument("--data", required=True, help="a latency dataset of families the predictor never trained on, "
                                                  "measured on its device")
    ap.add_argument("--check", action="append", default=[], metavar="DIR:DEV.json",
                    help="the same models on another device, and that device's probe (repeatable)")
    ap.add_argument("--publish", metavar="VERSION", help="ship the predictor with the wider interval as this version")
    ap.add_argument("--name", help="result file name (default: the dataset folder's name)")
    args = ap.parse_args(argv)

    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnformer import shipped
    from nnformer.latency.predict import resolve_predictor
    from nnformer.latency.probe import conditioned, load_profile
    from nnformer.machine import describe_line
    from nnformer.metrics import conformal_quantile, report

    p, label = resolve_predictor(args.predictor)
    entry = shipped.resolve(args.predictor)
    trained = set(json.loads((Path(entry.data.split(" ")[0]) / "meta.json").read_text())["families"]) \
        if Path(entry.data.split(" ")[0], "meta.json").exists() else set()
    graphs, ms, fams, pred, covs = _scored(p, args.data)
    overlap = trained & set(fams.tolist())
    if overlap:
        raise SystemExit(f"{args.data} has families {label} trained on ({', '.join(sorted(overlap))}): the wider "
                         f"interval must be calibrated on families it never saw")
    err = np.abs(np.log(pred) - np.log(ms))
    mix = np.array([c.mix_only for c in covs])
    known = np.array([c.reliable for c in covs])
    if mix.sum() < 20:
        raise SystemExit(f"only {int(mix.sum())} models of {args.data} are flagged for their operator mix alone; "
                         f"at least 20 are needed")
    q_normal = p.header_["interval"]["q"]
    q_wide = conformal_quantile(err[mix], LEVEL)
    per = held_out_coverage(err[mix], fams[mix])
    pooled = sum(v["holds"] * v["n"] for v in per.values()) / sum(v["n"] for v in per.values())

    def pct(x):
        return float(np.mean(x) * 100) if np.size(x) else float("nan")

    def mape(m):
        return 100 * np.mean(np.abs(pred[m] / ms[m] - 1)) if m.any() else float("nan")

    rows = [("known", "calibrated", known, q_normal, pct(err[known] <= q_normal)),
            ("operator mix alone", "calibrated", mix, q_normal, pct(err[mix] <= q_normal)),
            ("operator mix alone", "unfamiliar (each family held out)", mix, float("nan"), pooled),
            ("other flags", "none given", ~known & ~mix, float("nan"), float("nan"))]
    lines = [f"| {who} | {int(m.sum())} | {mape(m):.2f} "
             f"| {which} | {q:.3f} | {np.exp(2 * q) if q == q else float('nan'):.2f} | {held:.1f} |"
             for who, which, m, q, held in rows]
    csv = ["group,interval,n,mape,q,width,holds"] + [
        f"{who},{which},{int(m.sum())},{mape(m):.4f},"
        f"{q:.5f},{np.exp(2 * q) if q == q else float('nan'):.4f},{held:.2f}" for who, which, m, q, held in rows]
    fam_lines = [f"| {f} | {v['n']} | {v['q']:.3f} | {v['holds']:.0f} |" for f, v in per.items()]

    p.calibrate([g for g, m in zip(graphs, mix) if m], ms[mix], LEVEL, unfamiliar=True,
                note=f"{int(mix.sum())} models of {len(per)} families never trained on ({args.data})")
    checks = []
    for spec in args.check:
        data, _, prof_path = spec.rpartition(":")
        prof = load_profile(prof_path)
        g2, ms2, f2, pred2, covs2 = _scored(p, data)
        fit = conditioned(p, prof)
        on = np.array([fit.apply(v) for v in pred2])
        mix2 = np.array([c.mix_only for c in covs2])
        known2 = np.array([c.reliable for c in covs2])
        bounds = {kind: np.array([fit.interval(*v)
                                   for v in zip(pred2, *p.interval_bounds(pred2, kind == "unfamiliar"))])
                  for kind in ("calibrated", "unfamiliar")}
        for who, m, kind in (("known", known2, "calibrated"), ("operator mix alone", mix2, "calibrated"),
                             ("operator mix alone", mix2, "unfamiliar")):
            r = report(on[m], ms2[m], bounds=(bounds[kind][m, 0], bounds[kind][m, 1], LEVEL))
            checks.append(f"| {prof.name} | {who} | {r['n_test']} | {r['mape']:.2f} | {kind} | "
                          f"{r['interval']['coverage']:.1f} | {r['interval']['median_width_ratio']:.2f} |")
            csv.append(f"check {prof.name} ({data}),{kind},{r['n_test']},{r['mape']:.4f},,"
                       f"{r['interval']['median_width_ratio']:.4f},{r['interval']['coverage']:.2f}")

    name = args.name or Path(args.data).name
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, max(err.max(), q_wide) * 1.05, 30)
    ax.hist([err[known], err[mix]], bins=bins, label=["known", "operator mix alone"], stacked=False)
    ax.axvline(q_normal, color="k", ls="--", lw=1, label=f"calibrated q {q_normal:.3f}")
    ax.axvline(q_wide, color="r", ls="--", lw=1, label=f"unfamiliar q {q_wide:.3f}")
    ax.set(xlabel="|log predicted - log measured|", ylabel="models", title=f"{label} on {name}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=120)
    md = [f"# The interval for unfamiliar models: {label} on {args.data}", "", f"Command: `{command()}`", "",
          f"Run on {describe_line()}, {now()}; one run (deterministic given the files). {len(ms)} models of "
          f"{len(set(fams.tolist()))} families the predictor never trained on, measured on its device. Its coverage "
          f"verdict: {int(known.sum())} known, {int(mix.sum())} flagged for their operator mix alone, "
          f"{int((~known & ~mix).sum())} flagged for unseen operators, sizes or shapes (no interval).", "",
          f"The wider {100 * LEVEL:.0f}% interval calibrated on all {int(mix.sum())} mix-flagged models: q = "
          f"{q_wide:.3f} (high / low = {np.exp(2 * q_wide):.2f}); the calibrated one has q = {q_normal:.3f} "
          f"({np.exp(2 * q_normal):.2f}).", "",
          "| models | n | MAPE % | interval | q (log) | width (high / low) | holds % |",
          "|---|---|---|---|---|---|---|",
          *lines, "",
          "Each family held out of the calibration in turn (the row `unfamiliar (each family held out)` pools these):",
          "", "| held-out family | mix-flagged models | q of the other families | holds % |", "|---|---|---|---|",
          *fam_lines, ""]
    if checks:
        md += ["On other devices, through each device's probe line (the interval's log half-widths combined with "
               "the line's 90% residual, docs/method.md section 11):", "",
               "| device | models | n | MAPE % | interval | holds % | median width (high / low) |",
               "|---|---|---|---|---|---|---|", *checks, ""]
    md += [f"![absolute log errors]({name}.png)", ""]
    if args.publish:
        m = dict(entry.metrics)
        m["unfamiliar_interval"] = {"n": int(mix.sum()), "families": len(per), "data": args.data,
                                    "q": round(q_wide, 4), "holds_family_held_out": round(pooled, 1),
                                    "table": f"benchmarks/results/unfamiliar/{name}.md"}
        new = shipped.publish(p, entry.name, args.publish, description=entry.description, device=entry.device,
                              runtime=entry.runtime, data=entry.data, metrics=m, command=entry.command,
                              extra={**entry.extra, "unfamiliar_interval_command": command()})
        md += [f"Published as {new.spec}: {label} with this wider interval in its header.", ""]
    atomic_write_text(OUT / f"{name}.md", "\n".join(md))
    atomic_write_text(OUT / f"{name}.csv", "\n".join(csv) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
