"""`nnformer predict` on ONNX files the project's dataset never generated: predicted against measured latency.

Builds five models in plain PyTorch outside the dataset's families (a U-Net, a 2-layer LSTM, a ViT encoder block, a
wide ResNet-style network, a 1,000-operator chain), exports each at opsets 13 and 17, writes the weight-stripped form
of each file (dims kept, values removed: how models are shared for latency work), predicts every file with a latency
predictor, and times the full-weight files with `nnformer profile`'s measurement (ONNX Runtime, 1 thread, batch 1).

    python benchmarks/onnx_models.py --checkpoint runs/cpu/predictor.pt    # writes performance/onnx_models.{json,md}
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, machine, now, write_json  # noqa: E402


def models():
    import torch
    from torch import nn

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.d1, self.d2 = nn.Conv2d(3, 32, 3, 2, 1), nn.Conv2d(32, 64, 3, 2, 1)
            self.u1, self.u2 = nn.ConvTranspose2d(64, 32, 2, 2), nn.ConvTranspose2d(64, 16, 2, 2)
            self.out = nn.Conv2d(19, 2, 1)

        def forward(self, x):
            a = torch.relu(self.d1(x))
            b = torch.relu(self.d2(a))
            c = torch.cat([torch.relu(self.u1(b)), a], 1)
            return self.out(torch.cat([self.u2(c), x], 1))

    class LSTMNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(64, 128, 2, batch_first=True), nn.Linear(128, 10)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    class ViTBlock(nn.Module):
        def __init__(self, d=192, h=3):
            super().__init__()
            self.h, self.qkv, self.o = h, nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.f = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.n1(x)).reshape(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.h), -1) @ v
            x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
            return x + self.f(self.n2(x))

    def res_stage(c_in, c, s):
        return nn.Sequential(nn.Conv2d(c_in, c, 3, s, 1), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1),
                             nn.BatchNorm2d(c), nn.ReLU())

    wide = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1), res_stage(64, 96, 1),
                         res_stage(96, 192, 2), res_stage(192, 384, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(384, 1000))
    chain = nn.Sequential(*[m for _ in range(500) for m in (nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())])
    return {"unet": (UNet(), (1, 3, 128, 128)), "lstm": (LSTMNet(), (1, 32, 64)),
            "vit-block": (ViTBlock(), (1, 197, 192)), "wide-resnet": (wide, (1, 3, 160, 160)),
            "chain-1000": (chain, (1, 8, 16, 16))}


def strip(src: Path, dst: Path) -> None:
    import onnx

    m = onnx.load(str(src))
    for t in m.graph.initializer:
        if t.data_type in (1, 10, 11, 16):  # float weights; integer shapes stay
            for field in ("raw_data", "float_data", "double_data", "int32_data"):
                t.ClearField(field)
    onnx.save(m, str(dst))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a latency predictor trained on ONNX graphs")
    ap.add_argument("--no-measure", action="store_true", help="predict only")
    args = ap.parse_args()
    from nnformer.latency.profiler import export_onnx, time_onnx

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, shape) in models().items():
            for opset in (13, 17):
                full = Path(tmp) / f"{name}-op{opset}.onnx"
                export_onnx(model, shape, full, opset)
                stripped = full.with_name(full.stem + "-stripped.onnx")
                strip(full, stripped)
                out = subprocess.run([sys.executable, "-m", "nnformer", "predict", str(full), str(stripped),
                                      "--checkpoint", args.checkpoint], capture_output=True, text=True)
                if out.returncode:
                    rows.append({"model": name, "opset": opset, "error": out.stderr.strip()})
                    continue
                preds = [float(ln.split(" ms")[0]) for ln in out.stdout.splitlines()]
                found = re.search(r"(\d+ of \d+ nodes) are operators .*?\((.*?)\)", out.stderr)
                note = f"{found.group(2)} ({found.group(1)})" if found else ""
                row = {"model": name, "opset": opset, "predicted_ms": preds[0], "predicted_stripped_ms": preds[1],
                       "unknown_ops": note}
                if not args.no_measure:
                    row["measured_ms"] = time_onnx(str(full), threads=1, batch=1).latency_ms
                rows.append(row)
                print(row, file=sys.stderr)
    result = {"command": command(), "machine": machine(), "date": now(), "checkpoint": args.checkpoint, "rows": rows}
    write_json("onnx_models.json", result)
    lines = ["# Latency of ONNX models outside the training data: predicted and measured", "",
             f"Command: `{result['command']}`  ", f"Machine: {machine()['cpu']}  ", f"Date: {result['date']}", "",
             "Predicted by the checkpoint for the full and the weight-stripped file (the same graph: the same "
             "prediction); measured with ONNX Runtime on the CPU, 1 thread, batch 1 (median of 5 rounds of 20 runs).",
             "", "| model | opset | predicted (ms) | stripped file (ms) | measured (ms) | error | operators the predictor "
             "does not know |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['opset']} | failed: {r['error']} | | | | |")
            continue
        meas = r.get("measured_ms")
        err = f"{100 * (r['predicted_ms'] / meas - 1):+.0f}%" if meas else "-"
        lines.append(f"| {r['model']} | {r['opset']} | {r['predicted_ms']:.3f} | {r['predicted_stripped_ms']:.3f} | "
                     f"{'-' if meas is None else f'{meas:.3f}'} | {err} | {r['unknown_ops'] or '-'} |")
    from nnformer.io import atomic_write_text

    atomic_write_text(RESULTS / "performance" / "onnx_models.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
