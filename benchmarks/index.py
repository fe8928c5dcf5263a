"""Write benchmarks/results/INDEX.md: every published table, with the command and code version that made it.

    python benchmarks/index.py

Reads the JSON beside each accuracy table (``<space>/<recipe>/table.json``, ``quick.json``; superseded ones under
``archive/``), the recipe study's runs and the speed measurements, and lists them; nothing is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, now  # noqa: E402
from nnformer.io import atomic_write_text  # noqa: E402


def _table_rows(root: Path, latency: bool = False) -> list[str]:
    rows = []
    found = [*root.glob("*/*/table.json"), *root.glob("*/*/quick.json"),
             *root.glob("devices-*/devices-*/*/table.json")]  # a sweep given its own --out folder
    for js in sorted(found):
        if js.parts[-3].startswith(("help-", "networks-", "devices-")) != latency:
            continue
        d = json.loads(js.read_text())
        rel = js.relative_to(RESULTS).with_suffix(".md").as_posix()
        rows.append(f"| [{rel}]({rel}) | {d['runs']} | `{d['command']}` | {', '.join(d['code'])} | "
                    f"{'; '.join(d['machines'])} | {d['date']} |")
    return rows


def main() -> None:
    head = "| table | runs | command | code of the runs | machine of the runs | written |\n|---|---|---|---|---|---|"
    lines = ["# Results index", "", f"Written by `{command()}` on {now()}. Each table was written by the command "
             "beside it from the runs stored next to it (`runs.jsonl`, one line per run); rerunning that command "
             "with `--from-cache` rewrites it without training.", "",
             "## Accuracy prediction, current default recipe (`scaled`)", "", head, *_table_rows(RESULTS), "",
             "## Latency prediction (HELP's NAS-Bench-201 and FBNet devices, few-shot, whole networks)", "", head, *_table_rows(RESULTS, latency=True), "",
             "## Superseded recipes and one-off copies (archive)", "",
             "Earlier defaults (`fast`, `efficient`), a step-budget study (`efficient-steps6000`) and two fresh "
             "`--quick` runs on an empty store (`quick-fresh*`, which showed that a fresh `--quick` gives the "
             "stored table's cells).", "", head]
    lines += _table_rows(RESULTS / "archive")
    for copy in sorted((RESULTS / "archive").glob("quick-fresh*")):
        lines += _table_rows(copy)
    lines += ["", "## Latency product and search (each file names the command that wrote it)", ""]
    for md in ("latency-intervals/intervals.md", "latency-adapt/adapt.md", "search-nb201/search.md",
               "search-nb101/search.md"):
        if (RESULTS / md).is_file():
            title = (RESULTS / md).read_text().splitlines()[0].lstrip("# ")
            lines.append(f"- [{md}]({md}): {title}")
    lines += ["", "## Recipe study", ""]
    study = RESULTS / "recipe-study"
    n = len(list((study / "runs").glob("*.json")))
    lines += [f"- [recipe-study/recipe.md](recipe-study/recipe.md) and "
              f"[recipe_curves.png](recipe-study/recipe_curves.png): {n} runs, written by "
              "`python benchmarks/recipe.py plot` from `recipe-study/runs/` (each run's file names its command)."]
    lines += ["", "## Speed", "", "| file | command | CPU | ISA | threads | GPU | date |",
              "|---|---|---|---|---|---|---|"]
    for js in sorted((RESULTS / "performance").rglob("*.json")):
        if js.name.startswith("metrics_"):
            continue  # a GPU check's main-job metrics: summarised in its gpu_check.md
        d = json.loads(js.read_text())
        m = d.get("machine", {})
        rel = js.relative_to(RESULTS).as_posix()
        lines.append(f"| [{rel}]({rel}) | `{d.get('command', '?')}` | {m.get('cpu', '?')} | "
                     f"{m.get('cpu_isa', 'not recorded')} | {m.get('torch_threads', '?')} | {m.get('gpu', 'none')} | "
                     f"{d.get('date', '?')} |")
    for md in sorted((RESULTS / "performance").glob("gpu-*/gpu_check.md")):
        rel = md.relative_to(RESULTS).as_posix()
        lines.append(f"\nGPU check: [{rel}]({rel}), written by `python benchmarks/gpu_summary.py` from one run of "
                     "`bash benchmarks/gpu_check.sh`.")
    atomic_write_text(RESULTS / "INDEX.md", "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'INDEX.md'}")


if __name__ == "__main__":
    main()
