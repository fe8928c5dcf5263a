"""A latency predictor on another device, as shipped and put on the device by the one-minute probe.

    python benchmarks/probe.py --data DIR --profile DEV.json [--predictor cpu-zoo-ort-b1] [--name NAME]

DIR is a latency dataset measured on the device (`nnformer profile ... --out DIR`) and DEV.json the probe of the
same device (`nnformer device probe --out DEV.json`, same host, runtime, threads and batch: checked). Every model
of DIR (``--test-of``, ``--min-index``: some of them) is predicted four or five ways and scored against its measured
latency:

* `as-is`: the predictor as it is (milliseconds of the machine it was trained on);
* `probe-scale`: times one factor, the median ratio measured / predicted over the probe's references;
* `probe-line`: through the probe's line in log space (`nnformer predict --device`, docs/method.md section 11);
* `probe-home`: times the median ratio of the references' latencies on the device to those on the predictor's own
  device (its header's `home_probe`, or ``--home``): what `nnformer predict --device` does when the predictor has one;
* `roofline`: no predictor: each operator's max(FLOPs / peak, bytes / bandwidth) plus an overhead per operator,
  summed, the three constants fitted to the probe's references alone (`nnformer.baselines.Roofline`).

Models whose operators or sizes the predictor does not know (its coverage verdict) are scored apart: the table has
a row per method for the known models and for all. ``--test-of TRAIN_DIR``: score only the models of DIR that are
in the test part of TRAIN_DIR's per-family split (the split `nnformer train --task latency --data TRAIN_DIR` holds
out; ids match when both datasets were profiled with the same families and seed): a predictor trained on one device
meets models it never trained on, on another device. Writes benchmarks/results/probe/<NAME>.md, .csv and .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, now  # noqa: E402
from nnformer.io import atomic_write_text  # noqa: E402

OUT = RESULTS / "probe"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a latency dataset of the device")
    ap.add_argument("--profile", required=True, help="the device profile of the same device")
    ap.add_argument("--predictor", default="cpu-ort-b1", help="NAME[@VERSION] or a directory (default: cpu-ort-b1, the "
                                                              "predictor of the tables published without the flag)")
    ap.add_argument("--name", help="result file name (default: the dataset folder's name)")
    ap.add_argument("--test-of", metavar="TRAIN_DIR", help="score only the test part of TRAIN_DIR's family split")
    ap.add_argument("--home", metavar="HOME.json", help="the probe of the predictor's own device (default: the one "
                                                       "its header keeps, if any): adds the probe-home row")
    ap.add_argument("--min-index", type=int, default=0, metavar="K",
                    help="score only models of sample index K or more in their family (a dataset extended after a "
                         "predictor was trained on its first K of each family: the models it never saw)")
    args = ap.parse_args(argv)

    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnformer.latency.coverage import coverage
    from nnformer.latency.dataset import load_training_set
    from nnformer.latency.predict import resolve_predictor
    from nnformer.latency.probe import HOME_KEY, conditioned, load_profile
    from nnformer.machine import describe_line
    from nnformer.metrics import report

    prof = load_profile(args.profile)
    meta = json.loads((Path(args.data) / "meta.json").read_text())
    st, env = meta["settings"], meta["environment"]
    same = (st.get("runtime", "onnxruntime"), st["threads"], st["batch"], env["cpu"]) == (
        prof.runtime, prof.threads, prof.batch, prof.environment.get("cpu"))
    if not same:
        raise SystemExit(f"{args.data} ({st.get('runtime', 'onnxruntime')}, {st['threads']} threads, batch "
                         f"{st['batch']}, {env['cpu']}) is not the device of {args.profile} ({prof.name})")
    rows, graphs, ms, fams = load_training_set(args.data)
    if args.test_of:
        from nnformer.latency.dataset import load_dataset
        from nnformer.protocols import family_split

        trained = load_dataset(args.test_of)
        split = family_split([r["family"] for r in trained], [r["index"] for r in trained], cal_share=0.1)
        test_ids = {trained[i]["id"] for i in split.test}
        keep = [i for i, r in enumerate(rows) if r["id"] in test_ids]
        if not keep:
            raise SystemExit(f"{args.data} holds no model of the test part of {args.test_of}'s family split")
        rows, graphs, ms, fams = [rows[i] for i in keep], [graphs[i] for i in keep], ms[keep], [fams[i] for i in keep]
    if args.min_index:
        keep = [i for i, r in enumerate(rows) if r["index"] >= args.min_index]
        if not keep:
            raise SystemExit(f"{args.data} has no model of index {args.min_index} or more")
        rows, graphs, ms, fams = [rows[i] for i in keep], [graphs[i] for i in keep], ms[keep], [fams[i] for i in keep]
    p, label = resolve_predictor(args.predictor)
    base, lo, hi = (np.asarray(v, dtype=np.float64) for v in p.predict_interval(graphs))
    level = p.header_["interval"]["level"]
    verdicts = [coverage(p, g) for g in graphs]
    known = np.array([c.reliable for c in verdicts])
    wide = np.array([c.mix_only for c in verdicts]) & ("interval_unfamiliar" in p.header_)
    if wide.any():  # as `nnformer predict` gives them: the wider interval for a mix unlike the training graphs'
        lo[wide], hi[wide] = p.interval_bounds(base[wide], unfamiliar=True)
    maps = {"probe-scale": conditioned(p, prof, slope=False, home=False),
            "probe-line": conditioned(p, prof, home=False)}
    home = load_profile(args.home) if args.home else p.header_.get(HOME_KEY)
    if home:  # the ratio of the references measured on both devices (what `nnformer predict --device` does then)
        maps["probe-home"] = conditioned(p, prof, home=home)

    def mapped(m):
        bounds = np.array([m.interval(*v) for v in zip(base, lo, hi)])
        return np.array([m.apply(v) for v in base]), bounds[:, 0], bounds[:, 1]

    from nnformer.baselines import Roofline
    from nnformer.latency.onnx_graph import from_compact, node_costs

    roof = Roofline().fit([node_costs(from_compact(r["graph"])[0]) for r in prof.references], prof.latencies())
    nan = np.full(len(ms), np.nan)
    preds = {"as-is": (base, lo, hi), **{k: mapped(m) for k, m in maps.items()},
             "roofline": (roof.predict([node_costs(g) for g in graphs]), nan, nan)}
    lines, csv = [], ["method,models,n,mape,acc10,spearman,interval_coverage,interval_median_width"]
    for method, (pred, a, b) in preds.items():
        for which, mask in (("known", known), ("all", np.ones_like(known))):
            if not mask.any() or (which == "all" and mask.sum() == known.sum()):
                continue
            has = not np.isnan(a).all()
            r = report(pred[mask], ms[mask], bounds=(a[mask], b[mask], level) if has else None)
            iv = r.get("interval", {"coverage": float("nan"), "median_width_ratio": float("nan")})
            lines.append(f"| {method} | {which} | {r['n_test']} | {r['mape']:.2f} | {r['acc10']:.1f} | "
                         f"{r['spearman_test']:.4f} | {iv['coverage']:.0f} | {iv['median_width_ratio']:.2f} |")
            csv.append(f"{method},{which},{r['n_test']},{r['mape']:.4f},{r['acc10']:.2f},{r['spearman_test']:.5f},"
                       f"{iv['coverage']:.1f},{iv['median_width_ratio']:.3f}")
    name = args.name or Path(args.data).name
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 5))
    for method, mk in (("as-is", "x"), ("probe-line", "o")):
        ax.scatter(ms, preds[method][0], s=8, marker=mk, label=method)
    lim = [min(ms.min(), base.min()) * 0.8, max(ms.max(), base.max()) * 1.25]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="measured ms", ylabel="predicted ms", title=name)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=120)
    fit = "; ".join(f"{k}: a {m.a:+.3f}, b {m.b:.3f}, from {m.n} references, widen {m.widen:.3f}"
                    for k, m in maps.items())
    md = [f"# {label} on {prof.name}", "", f"Command: `{command()}`", "",
          f"Device: {prof.name}; probe of {prof.created} ({prof.probe_s:.1f} s). Dataset: {args.data}"
          + (f" (the test part of {args.test_of}'s family split)" if args.test_of else "")
          + (f" (models of sample index {args.min_index} or more)" if args.min_index else "") + ", "
          f"{len(ms)} models ({int(known.sum())} the predictor knows). Run on {describe_line()}, {now()}; one run "
          f"(deterministic given the files).", "", f"Fits: {fit}.", "",
          f"| method | models | n | MAPE % | Acc(10%) % | Spearman | {100 * level:.0f}% interval holds % | its median "
          f"width (high / low) |", "|---|---|---|---|---|---|---|---|", *lines, "",
          "`known`: the models whose operators and sizes the predictor knows (its coverage verdict); `all`: every "
          "model (shown when they differ). The intervals are scored on every model here, also where `nnformer "
          "predict` would withhold them" + (f"; the {int(wide.sum())} models flagged for their operator mix alone "
                                             f"get the wider interval for unfamiliar models, as `nnformer predict` "
                                             f"gives them" if wide.any() else "") + ".", "",
          f"![predicted vs measured]({name}.png)", ""]
    atomic_write_text(OUT / f"{name}.md", "\n".join(md))
    atomic_write_text(OUT / f"{name}.csv", "\n".join(csv) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
