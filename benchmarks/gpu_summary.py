"""Summarise one `benchmarks/gpu_check.sh` run: OUT_DIR/gpu_check.md from the JSON files and the log it wrote.

    python benchmarks/gpu_summary.py OUT_DIR

gpu_check.sh calls it at its end; run by hand, it rewrites the summary of a copied run folder
(benchmarks/results/performance/gpu-*/).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnformer.io import atomic_write_text  # noqa: E402


def summarise(out: Path) -> str:
    lines = [f"# GPU check ({out.name})", "",
             f"Written by `python benchmarks/gpu_summary.py {out.as_posix()}` from the files of one run of "
             "`bash benchmarks/gpu_check.sh DATA_DIR OUT_DIR` (its log: [gpu_check.log](gpu_check.log)).", ""]
    speed = out / "speed_cuda.json"
    if speed.is_file():
        s = json.loads(speed.read_text())
        m = s["machine"]
        lines += [f"Machine: {m.get('gpu', 'no GPU')}, {m['cpu']} ({m['cores']} cores), torch {m['torch']}, "
                  f"Python {m['python']}, {s['date']}.", "",
                  f"## Speed (`{s['command']}`; model: {s['config']}; median of {s['train']['processes']} processes)",
                  "", "| measure | median | min | max | peak GPU memory (MB) |", "|---|---|---|---|---|"]
        for key, name, unit in (("train", "training step, fp32", "train_step_ms_median"),
                                ("train_amp", "training step, bf16 autocast", "train_step_ms_median"),
                                ("infer", "inference, all 15,625 cells", "infer_archs_per_s_median")):
            if key in s:
                r = s[key]
                what = "ms" if "ms" in unit else "archs/s"
                lines.append(f"| {name} ({what}) | {r[unit]:.1f} | {r['min']:.1f} | {r['max']:.1f} | "
                             f"{r.get('peak_gpu_mb', float('nan')):.0f} |")
        lines.append("")
    runs = sorted(out.glob("metrics_*.json"))
    if runs:
        lines += ["## Main job on the GPU (`nnformer train --space nb201 --n-train 781 --device cuda`)", "",
                  "| run | tau test | tau val | tau unseen | training (s) | wall (s) | processes |",
                  "|---|---|---|---|---|---|---|"]
        for f in runs:
            d = json.loads(f.read_text())
            lines.append(f"| {f.stem.removeprefix('metrics_')} | {d['tau_test']:.4f} | {d['tau_val']:.4f} | "
                         f"{d['tau_test_unseen']:.4f} | {d['train_seconds']:.1f} | {d['wall_seconds']:.1f} | "
                         f"{d.get('world_size', 1)} |")
        lines.append("")
    log = out / "gpu_check.log"
    if log.is_file():
        steps = re.findall(r"^== (\w+): exit (\d+) after (\d+) s$", log.read_text(), flags=re.M)
        lines += ["## Steps", "", "| step | exit | seconds |", "|---|---|---|"]
        lines += [f"| {name} | {rc} | {sec} |" for name, rc, sec in steps]
        lines.append(f"| total | | {sum(int(s) for _, _, s in steps)} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python benchmarks/gpu_summary.py OUT_DIR (a folder written by gpu_check.sh)")
    out = Path(sys.argv[1])
    text = summarise(out)
    atomic_write_text(out / "gpu_check.md", text)
    print(text)


if __name__ == "__main__":
    main()
