"""How much of each model family's graph ONNX shape inference resolves, so its FLOPs and bytes are counted.

    python benchmarks/shapes.py --data datasets/zoo-ort-t2-b1 [--per-family 2]

Rebuilds the first ``--per-family`` models of every family of a latency dataset from their stored specs (random
weights), exports each to ONNX as `nnformer profile` did and converts it (`nnformer.latency.onnx_graph`): the share
of operators with an output whose shape stayed unknown (``unknown_shapes``: those count 0 FLOPs and bytes; above 20%
the reliability verdict flags the model), and the FLOPs counted per parameter, against the stored graph's FLOPs.
Needs the zoo's builders (``pip install 'nnformer[zoo]'``). Writes benchmarks/results/shapes/<dataset>.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, now  # noqa: E402
from nnformer.io import atomic_write_text  # noqa: E402

OUT = RESULTS / "shapes"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a latency dataset (graphs.jsonl.gz with model specs)")
    ap.add_argument("--per-family", type=int, default=2, help="models per family (default 2)")
    args = ap.parse_args(argv)

    from nnformer.latency import zoo  # noqa: F401 - registers the zoo's families
    from nnformer.latency.coverage import THRESHOLDS
    from nnformer.latency.families import ModelSpec, build
    from nnformer.latency.onnx_graph import export_onnx, onnx_to_graph
    from nnformer.latency.zoo import example_input

    data = Path(args.data)
    picked: dict[str, list] = {}
    with gzip.open(data / "graphs.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            if len(picked.setdefault(r["family"], [])) < args.per_family:
                picked[r["family"]].append(r)
    rows = []
    for fam in sorted(picked):
        for r in picked[fam]:
            sp = r["spec"]
            spec = ModelSpec(sp["family"], sp["params"], tuple(sp["input_shape"]))
            model = build(spec)
            _, static = onnx_to_graph(export_onnx(model, example_input(model, spec.input_shape), None))
            share = static["unknown_shapes"] / max(static["num_ops"], 1)
            rows.append((fam, r["id"], int(static["num_ops"]), int(static["unknown_shapes"]), share,
                         static["flops"] / max(static["params"], 1), r["graph"].get("static", {}).get("flops")))
            print(f"{r['id']}: {int(static['unknown_shapes'])} of {int(static['num_ops'])} operators without a "
                  f"shape", flush=True)
    flagged = sorted({fam for fam, *_, share, _, _ in rows if share > THRESHOLDS["unknown_shapes"]})
    partial = sorted({fam for fam, _, _, n, share, _, _ in rows if n and share <= THRESHOLDS["unknown_shapes"]})
    lines = ["# Shapes ONNX shape inference resolves, per model family", "",
             f"Command: `{command()}`  ", f"Written: {now()}; deterministic given the specs and library versions "
             f"(one run).", "",
             f"{len(rows)} models of {len(picked)} families of `{data.name}`. Flagged by the reliability verdict "
             f"(over {100 * THRESHOLDS['unknown_shapes']:.0f}% of the operators without a shape): "
             f"{', '.join(flagged) or 'none'}; partly unresolved, not flagged: {', '.join(partial) or 'none'}; "
             f"every other family resolved whole.", "",
             "| model | operators | without a shape | share | FLOPs / parameter | stored FLOPs |", "|---|---|---|---|---|---|"]
    for fam, mid, n, unk, share, fpp, stored in rows:
        lines.append(f"| {mid} | {n} | {unk} | {100 * share:.1f}% | {fpp:.1f} | "
                     f"{'-' if stored is None else f'{stored:.3g}'} |")
    out = atomic_write_text(OUT / f"{data.name}.md", "\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
