"""Latency-product speed: one ONNX model end to end, and scoring NAS-Bench-201 cells with a HELP device predictor.

    python benchmarks/latency_throughput.py [--nodes 300] [--cells 10000] [--repeats 5]

* **One model**: a plain-PyTorch network of about ``--nodes`` ONNX operators, exported once; then, in this process,
  the shipped CPU predictor loaded from the registry (both files' sha256 checked, safetensors read), the file imported
  (`onnx_to_graph`) and predicted with interval and operator coverage (`predict_graphs`): each stage timed, cold
  (first) and warm (median of ``--repeats``). The whole CLI (`nnformer predict model.onnx`, a new Python process, so
  imports included) is timed too. Target (issue): under 0.5 s end to end.
* **Scoring**: ``--cells`` NB201 cells (the first ones by index) with the shipped `help-nb201-fpga` predictor, graphs
  built from the arch strings, batches of 2,048, median of ``--repeats``. Target: under 10 s.

Writes benchmarks/results/performance/latency_throughput.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import command, machine, now, write_json  # noqa: E402

PREDICTOR = "cpu-ort-b1@1"  # the predictor its published table timed (every shipped CPU predictor is the same network)


def deep_net(n_nodes: int):
    """Conv-BN-ReLU blocks with a residual add every two (BatchNorm folds into Conv at export: 3 ops a pair)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

        def forward(self, x):
            return torch.relu(self.b(self.a(x)) + x)

    blocks = max(1, (n_nodes - 4) // 5)  # Conv, Relu, Conv, Add, Relu per block
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), *[Block(32) for _ in range(blocks)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()


def one_model(n_nodes: int, repeats: int) -> dict:
    from nnformer import shipped
    from nnformer.latency.onnx_graph import onnx_to_graph
    from nnformer.latency.predict import predict_graphs
    from nnformer.latency.profiler import export_onnx

    tmp = Path(tempfile.mkdtemp())
    path = export_onnx(deep_net(n_nodes), (1, 3, 64, 64), tmp / "deep.onnx")
    runs = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        p = shipped.load(PREDICTOR)
        t1 = time.perf_counter()
        converted = onnx_to_graph(path)
        t2 = time.perf_counter()
        r = predict_graphs(p, "x", [converted])[0]
        t3 = time.perf_counter()
        runs.append({"load_predictor_s": t1 - t0, "import_onnx_s": t2 - t1, "predict_s": t3 - t2,
                     "total_s": t3 - t0})
    warm = {k: float(np.median([x[k] for x in runs[1:]])) for k in runs[0]}
    t0 = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "nnformer", "predict", str(path), "--predictor", PREDICTOR],
                         capture_output=True, text=True)
    cli_s = time.perf_counter() - t0
    if cli.returncode:
        raise SystemExit(cli.stderr)
    return {"onnx_nodes": r.coverage.nodes, "graph_nodes": len(converted.graph.ops), "ms_predicted": r.ms,
            "cold": runs[0], "warm_median": warm, "repeats": repeats, "cli_wall_s": cli_s,
            "cli_output": cli.stdout.splitlines()[0], "target_s": 0.5, "met": warm["total_s"] < 0.5}


def scoring(n_cells: int, repeats: int, data_dir) -> dict:
    from nnformer import shipped
    from nnformer.data.nb201 import load_nb201
    from nnformer.spaces.nb201 import arch_to_graph

    archs = load_nb201(data_dir).arch_strs.tolist()[:n_cells]
    p = shipped.load("help-nb201-fpga")
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        graphs = [arch_to_graph(a) for a in archs]
        t1 = time.perf_counter()
        pred = p.predict(graphs)
        t2 = time.perf_counter()
        runs.append({"graphs_s": t1 - t0, "predict_s": t2 - t1, "total_s": t2 - t0})
    med = {k: float(np.median([x[k] for x in runs])) for k in runs[0]}
    return {"cells": len(archs), "median": med, "cells_per_s": len(archs) / med["total_s"], "repeats": repeats,
            "mean_ms_predicted": float(pred.mean()), "target_s": 10.0, "met": med["total_s"] < 10.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="latency_throughput.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    res = {"command": command(), "date": now(), "machine": machine(), "one_model": one_model(args.nodes, args.repeats),
           "scoring": scoring(args.cells, args.repeats, args.data_dir)}
    path = write_json(args.out, res)
    om, sc = res["one_model"], res["scoring"]
    print(f"one {om['onnx_nodes']}-operator model: {om['warm_median']['total_s']:.3f} s warm (load "
          f"{om['warm_median']['load_predictor_s']:.3f}, import {om['warm_median']['import_onnx_s']:.3f}, predict "
          f"{om['warm_median']['predict_s']:.3f}), {om['cold']['total_s']:.3f} s cold, CLI {om['cli_wall_s']:.2f} s")
    print(f"scoring {sc['cells']:,} NB201 cells: {sc['median']['total_s']:.2f} s ({sc['cells_per_s']:,.0f} cells/s)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
