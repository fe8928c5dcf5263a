"""Numbers in the README and docs are the generated results', cell by cell where a table names its source."""

import csv
import json
import re
from pathlib import Path

import pytest

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
    section = readme[start:readme.index("### Latency", start)]  # accuracy tables; latency ones are checked below
    tables = _tables(section)
    assert len(tables) == 3
    checked = 0
    for links, ns, rows in tables:
        assert links, "every results table links the CSV it quotes"
        sources = {p: _csv_means(ROOT / p) for p in links}
        for row in rows:
            m = re.search(r"\(`([a-z0-9-]+)`\)", row[0])
            if not m:
                assert row[0].startswith("paper"), row[0]  # the paper's numbers, quoted from docs/method.md section 8
                continue
            # a table quoting two files names the dataset in its rows
            src = [p for p in links if len(links) == 1 or ("cifar100" in p) == ("CIFAR-100" in row[0])]
            assert len(src) == 1, row[0]
            for n, cell in zip(ns, row[1:]):
                assert cell == sources[src[0]][m.group(1), n], (row[0], n, cell)
                checked += 1
    assert checked >= 60


def test_readme_latency_tables_match_their_csv_cell_by_cell():
    """Each latency table quotes the CSV linked above it: rows are methods, columns devices, and the line after the
    table says what the cells are ("MAPE % / Spearman" or "Spearman") and at which N."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Latency")
    lines = readme[start:readme.index("\n## ", start)].splitlines()
    checked, tables, csv_path = 0, 0, None
    for i, line in enumerate(lines):
        links = re.findall(r"\]\((benchmarks/results/[^)]+\.csv)\)", line)
        csv_path = links[-1] if links else csv_path
        if not line.startswith("| method |"):
            continue
        tables += 1
        devices = [c.strip() for c in line.strip("|").split("|")][1:]
        j = i + 2
        while lines[j].startswith("|"):
            j += 1
        what = next(ln for ln in lines[j:] if ln.startswith("Cells:"))
        n = int(re.search(r"N=(\d+)", what).group(1))
        with open(ROOT / csv_path) as f:
            rows = {(r["space"].split("-", 2)[-1], r["method"], int(r["n_train"])): r for r in csv.DictReader(f)}
        for row in lines[i + 2:j]:
            cells = [c.strip() for c in row.strip("|").split("|")]
            m = re.fullmatch(r"`([a-z0-9-]+)`", cells[0])
            if not m:
                assert "published" in cells[0], cells[0]  # quoted from docs/method.md section 8
                continue
            for dev, cell in zip(devices, cells[1:]):
                r = rows[dev, m.group(1), n]
                want = f"{float(r['spearman_test_mean']):.4f}"
                if what.startswith("Cells: MAPE % / Spearman"):
                    want = f"{float(r['mape_mean']):.2f} / {want}"
                assert cell == want, (csv_path, row, dev)
                checked += 1
    assert tables >= 2 and checked >= 30


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


def _quoted_numbers(doc: str, row_start: str, number: str) -> tuple[int, list]:
    """(how many numbers the table rows of ``docs/<doc>`` quote, those found in no results table)."""
    text = (ROOT / "docs" / doc).read_text()
    results = " ".join(p.read_text() for p in RESULTS.rglob("*.md"))
    quoted = [(x, line) for line in text.splitlines() if line.startswith(row_start) for x in re.findall(number, line)]
    return len(quoted), [(x, line[:50]) for x, line in quoted if x not in results]


def test_docs_accuracy_numbers_come_from_results_files():
    n, missing = _quoted_numbers("accuracy-tables.md", "|", r"\b0\.\d{4}\b")
    assert n > 100 and not missing, f"numbers in docs/accuracy-tables.md not in any results table: {missing}"


def test_docs_latency_numbers_come_from_results_files():
    n, missing = _quoted_numbers("latency.md", "| `", r"\b\d+\.\d{2}(?:\d{2})?\b")
    assert n > 40 and not missing, f"numbers in docs/latency.md not in any results table: {missing}"


def test_gpu_check_summary_is_its_runs_files_and_the_docs_quote_it(tmp_path):
    """gpu_summary.py rewrites the committed summary exactly; the GPU numbers in docs/performance.md are its JSON's."""
    import shutil
    import subprocess
    import sys

    run = RESULTS / "performance" / "gpu-h200"
    copy = tmp_path / "gpu-h200"
    shutil.copytree(run, copy)
    (copy / "gpu_check.md").unlink()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_summary.py"), str(copy)], check=True,
                   capture_output=True, cwd=ROOT)
    committed = (run / "gpu_check.md").read_text().replace(run.relative_to(ROOT).as_posix(), "DIR")
    assert (copy / "gpu_check.md").read_text().replace(str(copy), "DIR") == committed
    doc = (ROOT / "docs" / "performance.md").read_text()
    section = doc[doc.index("### Measured on one NVIDIA H200"):]
    fp32 = json.loads((run / "metrics_fp32.json").read_text())
    speed = json.loads((run / "speed_cuda.json").read_text())
    assert f"tau {fp32['tau_test']:.4f}" in section and f"{fp32['tau_val']:.4f} validation" in section
    assert f"{speed['train']['train_step_ms_median']:.1f} ms fp32" in section
    assert f"{speed['infer']['infer_archs_per_s_median']:,.0f} cells/s" in section


def test_docs_latency_product_numbers_come_from_results_or_the_registry():
    """Every number in a table row of docs/latency-product.md is in a results table or the predictor registry."""
    text = (ROOT / "docs" / "latency-product.md").read_text()
    sources = " ".join(p.read_text() for p in RESULTS.rglob("*.md"))
    sources += (ROOT / "nnformer" / "predictors" / "registry.json").read_text()
    def floats(x):
        if isinstance(x, dict):
            return [v for y in x.values() for v in floats(y)]
        return [x] if isinstance(x, float) else []

    speed = json.loads((RESULTS / "performance" / "latency_throughput.json").read_text())
    sources += " ".join(f"{v:.2f} {v:.3f}" for v in floats(speed))  # the speed table quotes rounded times
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    quoted = [(x, line[:40]) for line in rows for x in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", line)]
    missing = [(x, where) for x, where in quoted if x not in sources]
    assert len(quoted) > 30 and not missing, missing


def _search_rows(path: Path) -> dict[tuple[str, str], dict]:
    with open(path) as f:
        return {(r["dataset"], r["method"]): r for r in csv.DictReader(f)}


def test_search_tables_in_readme_and_docs_are_the_generated_csv():
    """Each row of a search table in the README or docs/search.md is its CSV's row: seeds, mean ± half-width at each
    checkpoint and the optimum count. A row names its dataset in a first column (NB201's three, or the NB101
    ``subset``), or is CIFAR-10's."""
    rows = _search_rows(RESULTS / "search-nb201" / "search.csv") | _search_rows(RESULTS / "search-nb101" / "search.csv")
    checked = 0
    readme, docs = (ROOT / "README.md").read_text(), (ROOT / "docs" / "search.md").read_text()
    sections = {"README.md": readme[readme.index("**Search, NB201 CIFAR-10**"):readme.index("### Latency")],
                "search.md": docs[docs.index("## Results"):docs.index("## Training steps")]}
    for name, text in sections.items():
        for line in text.splitlines():
            m = re.match(r"\| (?:(cifar10|cifar100|imagenet16|subset) \| )?`([a-z0-9-]+)` \| (\d+) \| (.*)", line)
            key = (m.group(1) or "cifar10", m.group(2)) if m else None
            if not m or key not in rows or "±" not in line:
                continue
            r = rows[key]
            cells = [c.strip() for c in m.group(4).strip("|").split("|")]
            assert int(m.group(3)) == int(r["seeds"]), line
            for q, cell in zip((50, 100, 150), cells):
                mean, half = float(r[f"best_test_at_{q}_mean"]), float(r[f"best_test_at_{q}_ci95"])
                assert cell == f"{mean:.2f} ± {half:.2f}", (name, line, q)
            assert cells[3].startswith(f"{r['optimum_found']}/{r['seeds']}"), (name, line)
            checked += 1
    assert checked >= 6


def test_latency_constrained_search_rows_in_docs_are_the_generated_csv():
    root = RESULTS / "search-nb201-latency"
    rows = {}
    for bound, name in (("point", "search.csv"), ("upper", "search-upper.csv")):
        with open(root / name) as f:
            rows |= {(r["device"], r["budget_ms"], bound, r["method"]): r for r in csv.DictReader(f)}
    docs = (ROOT / "docs" / "search.md").read_text()
    checked = 0
    for line in docs[docs.index("## Latency-constrained search"):].splitlines():
        m = re.match(r"\| ([a-z0-9_]+) <= ([0-9.]+) ms \| (point|upper) \| `([a-z-]+)` \| (\d+) \| (.*)", line)
        if not m:
            continue
        r = rows[m.group(1), m.group(2), m.group(3), m.group(4)]
        cells = [c.strip() for c in m.group(6).strip("|").split("|")]
        want = [f"{float(r[f'test_at_{q}_mean']):.2f} ± {float(r[f'test_at_{q}_ci95']):.2f}" for q in (50, 150)]
        want += [f"{r['budget_met']}/{r['seeds']}", f"{float(r['median_latency_ms']):.3g}",
                 f"{float(r['mean_gap_to_best_feasible']):+.2f}"]
        assert m.group(5) == r["seeds"] and cells == want, line
        checked += 1
    assert checked >= 8


@pytest.mark.slow  # CI builds the reference itself after the tests (.ci/run)
def test_api_reference_builds_from_the_docstrings(tmp_path):
    """docs/build_api.py (what CI runs) renders every module without a pdoc warning; the pages a user looks up first
    exist and document the calls the guides use."""
    import pytest

    pytest.importorskip("pdoc")
    import runpy

    out = runpy.run_path(str(ROOT / "docs" / "build_api.py"))["build"](tmp_path / "api")
    predictor, metrics = out / "nnformer" / "predictor.html", out / "nnformer" / "metrics.html"
    assert 'id="Predictor.fit"' in predictor.read_text() and 'id="Predictor.fit"' in (out / "nnformer.html").read_text()
    assert 'id="kendall_tau"' in metrics.read_text()
    assert (out / "nnformer" / "latency" / "predict.html").exists()  # subpackages are walked too


def test_docs_the_code_cites_exist_with_the_sections_cited():
    """Every ``docs/<name>.md`` that the package, benchmarks, tests or README name is a file of the repository, and every
    ``method.md section N`` (or ``sections N-M``, ``s.N``) names a numbered section of docs/method.md."""
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "method.md").read_text(), re.M))
    files = [*ROOT.glob("nnformer/**/*.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("tests/*.py"),
             ROOT / "README.md", *ROOT.glob("docs/*.md")]
    cited = 0
    for f in files:
        text = f.read_text()
        for name in re.findall(r"docs/([\w-]+\.md)", text):
            assert (ROOT / "docs" / name).is_file(), f"{f.relative_to(ROOT)} cites docs/{name}, not in the repository"
        for a, b in re.findall(r"method\.md(?:\)|`)?,? (?:sections?|s\.) ?(\d+)(?:-(\d+))?", text):
            for n in range(int(a), int(b or a) + 1):
                assert str(n) in sections, f"{f.relative_to(ROOT)} cites docs/method.md section {n}, which is missing"
                cited += 1
    assert cited >= 17


def test_readme_device_table_matches_its_csv_cell_by_cell():
    """The leave-one-device-out table quotes the sweeps linked above it (a CSV, or a table.md beside its CSV): rows
    are held-out devices, columns methods (by key), cells MAPE mean ± std over seeds, "-" where that sweep did not
    run the method."""
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("| held-out device |"))
    link = r"\]\((benchmarks/results/devices-[^)]+)\.(?:csv|md)\)"
    rows = {}
    for stem in [p for ln in lines[i - 6:i] for p in re.findall(link, ln)]:
        with open(ROOT / f"{stem}.csv") as f:
            for r in csv.DictReader(f):  # a device held out in two sweeps: the first linked one's
                rows.setdefault((r["method"], r["held"]), r)
    methods = re.findall(r"`([a-z0-9-]+)`", lines[i])
    assert "nnformer-line" in methods and len(methods) >= 3
    checked = 0
    for row in lines[i + 2:]:
        if not row.startswith("|"):
            break
        cells = [c.strip() for c in row.strip("|").split("|")]
        held = re.search(r"`([^`]+)`", cells[0]).group(1)
        for m, cell in zip(methods, cells[1:]):
            if cell == "-":
                assert (m, held) not in rows, (row, m)
                continue
            r = rows[m, held]
            want = f"{float(r['mape_mean']):.2f}" + (f" ± {float(r['mape_std']):.2f}" if int(r["k"]) > 1 else "")
            assert cell.replace("**", "") == want, (row, m)
            checked += 1
    assert checked >= 3 * len(methods)
