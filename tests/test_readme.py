"""The README's Python example runs as written and does what the README says it prints."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_example_runs_as_written(data_dir, tmp_path):
    code = readme_example()
    assert "Predictor()" in code and '"../shared/data"' in code
    # the one change: where the data is (the example names it relative to a clone beside ../shared)
    (tmp_path / "example.py").write_text(code.replace('"../shared/data"', repr(str(data_dir))))
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    tau = float(re.search(r"Kendall's tau over all cells: (\d\.\d+)", r.stdout).group(1))
    assert 0.75 < tau < 0.83  # "prints a tau near 0.79"
    assert (tmp_path / "runs" / "example" / "predictor.pt").is_file()  # in a run directory, not the working one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.py", "runs"]


def test_readme_set_up_line_installs_what_profile_needs_and_the_license_is_an_spdx_string():
    import tomllib

    text = (ROOT / "README.md").read_text()
    setup = text[text.index("## Set up and run"):text.index("### What the main job prints")]
    line = next(ln for ln in setup.splitlines() if ln.startswith("pip install"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = re.search(r'-e "?\.\[([\w,]+)\]"?', line)
    deps = project["project"]["dependencies"] + [d for e in (extras.group(1).split(",") if extras else [])
                                                 for d in project["project"]["optional-dependencies"][e]]
    assert any(d.startswith("onnxruntime") for d in deps), line  # `nnformer profile` times with ONNX Runtime
    assert "bash .ci/run" in setup
    # PEP 639: a license table is deprecated (setuptools stops building it), an SPDX string needs setuptools>=77
    assert project["project"]["license"] == "MIT"
    assert project["build-system"]["requires"] == ["setuptools>=77"]


def test_readme_names_what_the_commands_write(capsys):
    from nnformer.cli import main

    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    row = next(ln for ln in text.splitlines() if ln.startswith("| `nnformer reproduce accuracy"))
    for base in ("table", "quick"):  # `reproduce accuracy` writes <base>.{md,csv,json} and <base>_tau_vs_n.png
        assert f"{base}.{{md,csv,json}}`" in row and f"`{base}_tau_vs_n.png`" in row
    main_job = text[text.index("### What the main job prints"):text.index("| Kendall's tau over all")]
    assert "`checkpoint.pt`" in main_job and "resumes" in main_job
    assert "--torch path/to/models.py:" in text
    assert main(["predict", "--help"]) == 0 and "path/to/models.py:" in capsys.readouterr().out
