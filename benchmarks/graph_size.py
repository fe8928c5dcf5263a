"""Time and memory of NN-Former on whole-network graphs by size: import, training step, prediction.

For each size n (default 100, 250, 500, 1000, 2000 operators), in a fresh process:
  * import: an ONNX chain of n/2 (Conv, Relu) pairs exported by torch, converted by ``onnx_to_graph``, median of 3;
  * train: forward + backward + AdamW on a batch of ``--batch`` such graphs with the ``networks`` recipe's network
    (4 blocks, dim 96, hidden 192, node and static features), median over 5 steps after one warm-up;
  * predict: milliseconds per graph at that batch, median over 5;
  * peak memory: max RSS of the process (import, training and prediction included).

    python benchmarks/graph_size.py                      # writes benchmarks/results/performance/graph_size.{json,md}
    python benchmarks/graph_size.py --sizes 100,1000 --batch 4
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, machine, now, write_json  # noqa: E402


def one_size(n: int, batch: int, threads: int) -> dict:
    import torch
    from torch import nn

    from nnformer.batching import EncodedGraphs
    from nnformer.latency.onnx_graph import onnx_to_graph, with_static
    from nnformer.regressors import build_model
    from nnformer.recipes import RECIPES
    from nnformer.train import make_optimizer, predict_encoded
    from nnformer.vocab import ONNX

    torch.set_num_threads(threads)
    net = nn.Sequential(*[m for _ in range(n // 2) for m in (nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())]).eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 8, 16, 16),), f, dynamo=False, opset_version=17)
    blob = f.getvalue()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        g, static = onnx_to_graph(blob)
        times.append(time.perf_counter() - t)
    graph = with_static(g, static)
    data = EncodedGraphs([graph] * batch, ONNX)
    cfg = RECIPES["networks"].model
    import dataclasses

    cfg = dataclasses.replace(cfg, n_features=graph.features.shape[1], n_graph_features=len(graph.graph_features))
    model = build_model(cfg)
    opt = make_optimizer(model, 1e-3, 0.01)
    b = data.batch(np.arange(batch))
    y = torch.zeros(batch)
    steps = []
    for i in range(6):
        t = time.perf_counter()
        model.train()
        loss = ((model(b) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            steps.append(time.perf_counter() - t)
    preds = []
    for _ in range(5):
        t = time.perf_counter()
        predict_encoded(model, data, batch_size=batch)
        preds.append((time.perf_counter() - t) / batch)
    return {"nodes": graph.num_nodes, "batch": batch, "threads": threads,
            "import_s": float(np.median(times)), "train_step_s": float(np.median(steps)),
            "predict_ms_per_graph": 1000 * float(np.median(preds)),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,250,500,1000,2000")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.batch, args.threads)))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--batch", str(args.batch), "--threads",
                              str(args.threads)], capture_output=True, text=True)
        if out.returncode:
            rows.append({"nodes": n + 2, "error": out.stderr.strip().splitlines()[-1]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    result = {"command": command(), "machine": machine(), "date": now(), "rows": rows}
    write_json("graph_size.json", result)
    lines = ["# NN-Former on whole-network graphs: time and memory by size", "",
             f"Command: `{result['command']}`  ", f"Machine: {machine()['cpu']}, {args.threads} torch thread(s)  ",
             f"Date: {result['date']}", "",
             "One fresh process per size; medians (import of 3, training steps of 5 after a warm-up, predictions "
             "of 5). The network is the `networks` recipe's (4 blocks, dim 96, node and static features).", "",
             "| nodes | ONNX import (s) | training step, batch of "
             f"{args.batch} (s) | prediction (ms / graph) | peak RSS (MiB) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['nodes']} | " + (f"failed: {r['error']} | | |" if "error" in r else
                     f"{r['import_s']:.3f} | {r['train_step_s']:.2f} | {r['predict_ms_per_graph']:.1f} | "
                     f"{r['peak_rss_mib']:.0f} |"))
    from nnformer.io import atomic_write_text

    atomic_write_text(RESULTS / "performance" / "graph_size.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
