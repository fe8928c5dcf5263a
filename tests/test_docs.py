"""Numbers in the README and docs are the generated results', cell by cell where a table names its source."""

import csv
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _csv_means(path: Path) -> dict[tuple[str, int], str]:
    with open(path) as f:
        return {(r["method"], int(r["n_train"])): f"{float(r['tau_test_mean']):.4f}" for r in csv.DictReader(f)}


def _tables(section: str):
    """(CSV files linked since the previous table, header N values, rows) for each Markdown table of a section."""
    links, out, lines = [], [], section.splitlines()
    i = 0
    while i < len(lines):
        links += re.findall(r"\]\((benchmarks/results/[^)]+\.csv)\)", lines[i])
        if lines[i].startswith("| method |"):
            ns = [int(n) for n in re.findall(r"N=(\d+)", lines[i])]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            out.append((links, ns, rows))
            links = []
        i += 1
    return out


def test_readme_results_tables_match_their_csv_cell_by_cell():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Results")
    section = readme[start:readme.index("\n## ", start + 1)]
    tables = _tables(section)
    assert len(tables) == 3
    checked = 0
    for links, ns, rows in tables:
        assert links, "every results table links the CSV it quotes"
        sources = {p: _csv_means(ROOT / p) for p in links}
        for row in rows:
            m = re.search(r"\(`([a-z0-9-]+)`\)", row[0])
            if not m:
                assert row[0].startswith("paper"), row[0]  # the paper's numbers, quoted from docs/NNFORMER.md
                continue
            # a table quoting two files names the dataset in its rows
            src = [p for p in links if len(links) == 1 or ("cifar100" in p) == ("CIFAR-100" in row[0])]
            assert len(src) == 1, row[0]
            for n, cell in zip(ns, row[1:]):
                assert cell == sources[src[0]][m.group(1), n], (row[0], n, cell)
                checked += 1
    assert checked >= 60


def test_readme_latency_table_matches_its_csv_cell_by_cell():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Latency")
    section = readme[start:readme.index("\n## ", start)]
    path = re.search(r"\]\((benchmarks/results/help-nb201/[^)]+\.csv)\)", section).group(1)
    with open(ROOT / path) as f:
        rows = {(r["space"].removeprefix("help-nb201-"), r["method"], int(r["n_train"])): r for r in csv.DictReader(f)}
    checked = 0
    for line in section.splitlines():
        m = re.match(r"\| (\S+) \| .*\(`([a-z-]+)`\) \| (\d+) \| (.*) \|$", line)
        if not m:
            continue
        r = rows[m.group(1), m.group(2), int(m.group(3))]
        cells = [c.strip() for c in m.group(4).split("|")]
        assert cells == [f"{float(r['mape_mean']):.2f}", f"{float(r['acc10_mean']):.1f}",
                         f"{float(r['spearman_test_mean']):.4f}"], line
        checked += 1
    assert checked >= 12


def test_readme_main_job_numbers_are_the_runs():
    readme = (ROOT / "README.md").read_text()
    m = json.loads((RESULTS / "main-job" / "metrics.json").read_text())
    row = next(ln for ln in readme.splitlines() if ln.startswith("| NN-Former, recipe `scaled`, N=781"))
    quoted = re.findall(r"0\.\d{4}", row)
    assert quoted == [f"{m['tau_test']:.4f}", f"{m['tau_val']:.4f}", f"{m['tau_test_unseen']:.4f}"]
    assert m["command"].startswith("nnformer train --space nb201 --n-train 781")
    printed = re.search(r"Kendall tau over all 15,625 cells: (.*)", readme).group(1)
    assert printed.startswith(f"{m['tau_test']:.4f} (test label), {m['tau_val']:.4f} (val label)")
    assert f"time: {m['train_seconds']:.0f}s to train, {m['eval_seconds']:.1f}s to score" in readme


def test_docs_accuracy_numbers_come_from_results_files():
    doc = (ROOT / "docs" / "accuracy-tables.md").read_text()
    results = " ".join(p.read_text() for p in RESULTS.rglob("*.md"))
    quoted = [(x, line) for line in doc.splitlines() if line.startswith("|")
              for x in re.findall(r"\b0\.\d{4}\b", line)]
    assert len(quoted) > 100
    missing = [(x, line[:50]) for x, line in quoted if x not in results]
    assert not missing, f"numbers in docs/accuracy-tables.md not in any results table: {missing}"
