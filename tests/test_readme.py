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


def readme_device_commands() -> tuple[list[str], str]:
    """The README's shell example of a probed device: its ``$ nnformer ...`` commands and the lines it shows."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Latency of your own model"):]
    block = next(b for b in re.findall(r"```\n(.*?)```", section, re.S) if "nnformer device probe" in b)
    commands = [ln[2:].split("  #")[0].strip() for ln in block.splitlines() if ln.startswith("$ ")]
    return commands, block


@pytest.mark.slow
def test_readme_device_example_runs_on_a_family_never_trained_on(tmp_path):
    """From the README as written: probe this machine, then predict a model of a family in none of the shipped
    predictor's training data, for the probed device; the output has the README's shape."""
    import os
    import shlex

    commands, block = readme_device_commands()
    assert [c.split()[:3] for c in commands] == [["nnformer", "device", "probe"], ["nnformer", "predict", "--torch"]]
    probe_out = commands[0].split("--out")[1].split()[0]
    assert f"--device {probe_out}" in commands[1] and "examples.models:convmixer" in commands[1]
    from nnformer.latency.families import FAMILIES

    assert not [f for f in FAMILIES if "mixer" in f and "conv" in f]  # no dataset of the project has ConvMixers
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outputs = []
    for c in commands:
        argv = [sys.executable, "-m", "nnformer", *shlex.split(c)[1:]]
        r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        outputs.append(r)
    from nnformer.latency.probe import load_profile

    assert load_profile(tmp_path / probe_out).probe_s <= 60
    shown = next(ln for ln in block.splitlines() if "examples.models:convmixer" in ln and not ln.startswith("$"))
    got = outputs[1].stdout.splitlines()[0]
    shape = lambda ln: re.sub(r"\d+\.\d+", "N", ln)  # noqa: E731 - the numbers are this machine's
    assert shape(got) == shape(shown), (got, shown)
    assert "probed device" in outputs[1].stderr
