"""Noise floor of a latency dataset written by `nnformer profile`: per-model spread between timing rounds.

    python benchmarks/latency_noise.py datasets/latency-cpu-b1 "nnformer profile --per-family 10 --out ..."

Spread = IQR / median of a model's round medians (as the profiler records it). Its median over models bounds the
Acc(10%) any latency predictor can reach on this data. Rewrites the dataset's README.md with the figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import command, now  # noqa: E402


def main() -> None:
    root = Path(sys.argv[1])
    made_by = sys.argv[2] if len(sys.argv) > 2 else "nnformer profile"
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

Written by `{command()}` on {now()}.
"""
    (root / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
