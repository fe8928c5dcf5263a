"""The README's accuracy tables quote committed results files: every tau in them must be found in one."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_accuracy_tables_quote_the_results_files():
    readme = (ROOT / "README.md").read_text()
    results = " ".join(p.read_text() for p in (ROOT / "benchmarks" / "results").rglob("*.md"))
    start = readme.index("## Accuracy tables")
    end = readme.find("\n## ", start + 1)
    section = readme[start:end if end > 0 else None]
    quoted = [(x, line) for line in section.splitlines() if line.startswith("|")
              for x in re.findall(r"\b0\.\d{4}\b", line)]
    assert len(quoted) > 100  # the NB201, NB101 and other-label tables
    missing = [(x, line[:50]) for x, line in quoted if x not in results]
    assert not missing, f"README numbers not in any benchmarks/results/*.md: {missing}"
