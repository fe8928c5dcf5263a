"""The same models on two hosts: how far one machine's latencies are from another's, family by family.

    python benchmarks/hosts.py --a datasets/zoo-ort-t1-b1 --b datasets/zoo-ort-t1-b1-xeon [--name NAME]

A and B are latency datasets of the same models (same families and seed, so the same ids) measured with the same
runtime, threads and batch on two hosts (checked). Per family: the median ratio B / A of the models both hold,
its spread (the 10th to 90th percentile of the ratio) and Spearman's rank correlation between the hosts; overall,
how well one factor (the median ratio) puts A's latencies on B: the MAPE it leaves, which is what no predictor
trained on A can avoid without learning something about B. Writes benchmarks/results/hosts/<NAME>.md, .csv, .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, now  # noqa: E402
from nnformer.io import atomic_write_text  # noqa: E402

OUT = RESULTS / "hosts"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="latency dataset of host A")
    ap.add_argument("--b", required=True, help="the same models measured on host B")
    ap.add_argument("--name", help="result file name (default: B's folder name)")
    args = ap.parse_args(argv)

    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    from nnformer.latency.dataset import load_dataset
    from nnformer.machine import describe_line

    metas = [json.loads((Path(d) / "meta.json").read_text()) for d in (args.a, args.b)]
    keys = [(m["settings"].get("runtime", "onnxruntime"), m["settings"]["threads"], m["settings"]["batch"],
             m["settings"]["seed"]) for m in metas]
    if keys[0] != keys[1]:
        raise SystemExit(f"{args.a} and {args.b} differ in runtime, threads, batch or seed: {keys[0]} vs {keys[1]}")
    a = {r["id"]: r for r in load_dataset(args.a)}
    b = {r["id"]: r for r in load_dataset(args.b)}
    ids = sorted(set(a) & set(b))
    if len(ids) < 10:
        raise SystemExit(f"{args.a} and {args.b} share {len(ids)} models; at least 10 are needed")
    fams = np.array([a[i]["family"] for i in ids])
    ms_a = np.array([a[i]["latency_ms"] for i in ids])
    ms_b = np.array([b[i]["latency_ms"] for i in ids])
    ratio = ms_b / ms_a
    one = np.median(ratio)
    rows, csv = [], ["family,n,median_ratio,p10,p90,spearman,mape_one_factor"]
    for f in sorted(set(fams.tolist())):
        m = fams == f
        r = ratio[m]
        rho = spearmanr(ms_a[m], ms_b[m]).statistic if m.sum() > 2 else float("nan")
        mape = 100 * np.mean(np.abs(one * ms_a[m] / ms_b[m] - 1))
        p10, p90 = np.percentile(r, [10, 90])
        rows.append((f, int(m.sum()), float(np.median(r)), p10, p90, rho, mape))
        csv.append(f"{f},{int(m.sum())},{np.median(r):.4f},{p10:.4f},{p90:.4f},{rho:.4f},{mape:.3f}")
    mape_all = 100 * np.mean(np.abs(one * ms_a / ms_b - 1))
    per_family = np.array([r[2] for r in rows])
    fam_of = {f: med for f, _, med, *_ in rows}
    mape_fam = 100 * np.mean(np.abs(np.array([fam_of[f] for f in fams]) * ms_a / ms_b - 1))
    within10 = 100 * np.mean(np.abs(one * ms_a / ms_b - 1) <= 0.1)
    rho_all = spearmanr(ms_a, ms_b).statistic
    name = args.name or Path(args.b).name
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.18 * len(rows))))
    order = np.argsort(per_family)
    for k, j in enumerate(order):
        f, _, med, p10, p90, *_ = rows[j]
        ax.plot([p10, p90], [k, k], color="0.6", lw=2)
        ax.plot(med, k, "o", color="C0", ms=4)
    ax.axvline(one, color="r", ls="--", lw=1, label=f"one factor {one:.2f}")
    ax.set_yticks(range(len(rows)), [rows[j][0] for j in order], fontsize=6)
    ax.set(xscale="log", xlabel="latency on B / latency on A (median, 10th-90th percentile)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=120)
    env = [m["environment"] for m in metas]
    md = [f"# The same models on two hosts: {args.b} against {args.a}", "", f"Command: `{command()}`", "",
          f"Host A: {env[0]['cpu']} ({env[0]['cpu_count']} cores); host B: {env[1]['cpu']} ({env[1]['cpu_count']} "
          f"cores); both {keys[0][0]} {env[0].get(keys[0][0], '')}, {keys[0][1]} thread(s), batch {keys[0][2]}. "
          f"{len(ids)} models both hold, {len(rows)} families. Written on {describe_line()}, {now()}; each latency "
          f"is one measurement (the median of the kept rounds, as the datasets record it).", "",
          f"Over all models: median ratio B / A **{one:.3f}**; Spearman between the hosts {rho_all:.4f}. A's "
          f"latencies times that one factor miss B's by **MAPE {mape_all:.2f}%** ({within10:.1f}% within 10%); "
          f"with a factor per family (known only after measuring each family on B) by {mape_fam:.2f}%. Family "
          f"medians range from {per_family.min():.2f} to {per_family.max():.2f}: no single factor puts one host's "
          f"labels on the other.", "",
          "| family | models | median B / A | 10th-90th percentile | Spearman | MAPE of one factor % |",
          "|---|---|---|---|---|---|",
          *[f"| {f} | {n} | {med:.3f} | {p10:.3f} - {p90:.3f} | {rho:.4f} | {mape:.2f} |"
            for f, n, med, p10, p90, rho, mape in rows], "", f"![ratio per family]({name}.png)", ""]
    atomic_write_text(OUT / f"{name}.md", "\n".join(md))
    atomic_write_text(OUT / f"{name}.csv", "\n".join(csv) + "\n")
    print("\n".join(md[:8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
