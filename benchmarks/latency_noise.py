"""Noise floor of a latency dataset written by `nnformer profile`: per-model spread between timing rounds.

    python benchmarks/latency_noise.py datasets/latency-cpu-b1 "nnformer profile --per-family 10 --out ..."
    python benchmarks/latency_noise.py DATASET "COMMAND" --remeasure 30

Spread = IQR / median of a model's round medians (as the profiler records it). Its median over models bounds the
Acc(10%) any latency predictor can reach on this data. ``--remeasure K`` times K random models of the dataset again
with its settings (on the host that measured it: refused elsewhere, where it would measure the host, not the noise)
and reports the label repeatability, the MAPE between the two measurements; the re-measured labels are kept in
``remeasure.jsonl`` and reused on a rerun. Rewrites the dataset's README.md with the figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import command, now  # noqa: E402


def remeasure(root: Path, meta: dict, ok: list[dict], k: int) -> str:
    """Re-time ``k`` random models (seed 0) with the dataset's settings; the README paragraph on repeatability."""
    import gzip

    from nnformer.latency.families import ModelSpec
    from nnformer.latency.profiler import profile_spec
    from nnformer.machine import cpu_model

    if meta["environment"]["cpu"] != cpu_model():
        raise SystemExit(f"{root} was measured on {meta['environment']['cpu']}, this is {cpu_model()}: a "
                         f"re-measurement here measures the host, not the label noise")
    specs = {}
    with gzip.open(root / "graphs.jsonl.gz", "rt") as f:
        for line in f:
            d = json.loads(line)
            specs[d["id"]] = d["spec"]
    out = root / "remeasure.jsonl"
    done = {json.loads(ln)["id"]: json.loads(ln) for ln in out.read_text().splitlines()} if out.is_file() else {}
    pick = np.random.default_rng(0).choice(len(ok), size=min(k, len(ok)), replace=False)
    st = meta["settings"]
    for i in pick:
        r = ok[i]
        if r["id"] in done:
            continue
        fields, _ = profile_spec(ModelSpec.from_dict(specs[r["id"]]), threads=st["threads"], batch=st["batch"],
                                 warmup=st["warmup"], runs=st["runs"], rounds=st["rounds"])
        done[r["id"]] = {"id": r["id"], "first_ms": r["latency_ms"], "again_ms": fields["latency_ms"], "date": now()}
        with open(out, "a") as f:
            f.write(json.dumps(done[r["id"]]) + "\n")
    rows = [done[ok[i]["id"]] for i in pick]
    rel = np.array([abs(x["again_ms"] - x["first_ms"]) / x["first_ms"] for x in rows])
    ratio = np.array([x["again_ms"] / x["first_ms"] for x in rows])
    return (f"**Label repeatability**: {len(rows)} random models timed again with the same settings on the same host "
            f"(`remeasure.jsonl`, {rows[0]['date']} .. {rows[-1]['date']}): MAPE between the two measurements "
            f"{100 * rel.mean():.2f}% (median {100 * np.median(rel):.2f}%, {100 * np.mean(rel <= 0.05):.0f}% within "
            f"5%, {100 * np.mean(rel <= 0.10):.0f}% within 10%; median ratio again / first {np.median(ratio):.3f}). "
            f"No predictor can be told apart from another below this error.\n")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("made_by", nargs="?", default="nnformer profile")
    ap.add_argument("--remeasure", type=int, default=0, help="re-time this many random models (default 0)")
    args = ap.parse_args()
    root, made_by = Path(args.root), args.made_by
    meta = json.loads((root / "meta.json").read_text())
    recs = [json.loads(ln) for ln in (root / "latency.jsonl").read_text().splitlines() if ln.strip()]
    ok = [r for r in recs if r.get("status") == "ok"]
    failed = [r for r in recs if r.get("status") != "ok"]
    fams = sorted({r["family"] for r in ok})
    # worst-case relative gap between a model's rounds and its median: a second measurement of the same model
    # can land this far away
    gap = np.array([max(abs(np.array(r["round_ms"]) - r["latency_ms"])) / r["latency_ms"] for r in ok])
    spread = np.array([r["spread"] for r in ok])
    rows = ["| family | models | latency ms (min / median / max) | median spread (IQR/median) |", "|---|---|---|---|"]
    for f in fams:
        lat = np.array([r["latency_ms"] for r in ok if r["family"] == f])
        sp = np.array([r["spread"] for r in ok if r["family"] == f])
        rows.append(f"| {f} | {len(lat)} | {lat.min():.2f} / {np.median(lat):.2f} / {lat.max():.2f} | "
                    f"{np.median(sp) * 100:.2f}% |")
    env = meta["environment"]
    repeat = remeasure(root, meta, ok, args.remeasure) if args.remeasure else ""
    text = f"""# Latency dataset: {root.name}

Measured with `{made_by}` on {env['cpu']} ({env['cpu_count']} cores), ONNX Runtime {env['onnxruntime']}
(CPUExecutionProvider, {env['threads']} intra-op thread), batch {env['batch']}; settings {meta['settings']}.
Files: `graphs.jsonl.gz` (gzip, one compact ArchGraph + model spec per line; no weights), `latency.jsonl` (median latency,
round medians, spread, FLOPs/params per model), `meta.json` (environment). Rerunning the profile command with a
larger `--per-family` extends it without re-measuring.

{len(ok)} models measured, {len(failed)} failed (recorded in latency.jsonl).

{chr(10).join(rows)}

**Noise floor**: median spread between rounds {np.median(spread) * 100:.2f}% (IQR/median); median over models of the
largest gap between one round and the model's median {np.median(gap) * 100:.2f}%, and
{np.mean(gap <= 0.10) * 100:.1f}% of models have every round within 10% of their median. A label (the median of the
kept rounds) is steadier than one round, but a re-measurement on this machine moves by a few percent: Acc(1%) and
Acc(5%) are noise-limited here, and predictor errors well under the spread cannot be told from noise.

{repeat}
Written by `{command()}` on {now()}.
"""
    (root / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
