"""The README's Python example runs as written and does what the README says it prints."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_as_written(data_dir, tmp_path):
    code = readme_example()
    assert "Predictor()" in code and '"../shared/data"' in code
    # the one change: where the data is (the example names it relative to a clone beside ../shared)
    (tmp_path / "example.py").write_text(code.replace('"../shared/data"', repr(str(data_dir))))
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    tau = float(re.search(r"Kendall's tau over all cells: (\d\.\d+)", r.stdout).group(1))
    assert 0.75 < tau < 0.83  # "prints a tau near 0.79"
    assert (tmp_path / "predictor.pt").is_file()
