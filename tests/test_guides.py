"""The guides under docs/guides/ show commands the CLI accepts and code that runs as written."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _commands(text: str) -> list[str]:
    """Every `nnformer ...` line of the guide's bash blocks, continuation lines joined, comments dropped."""
    out = []
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("nnformer "):
                out.append(line)
    return out


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_guide_commands_parse_with_the_cli(guide):
    from nnformer.cli import build_parser

    commands = _commands(guide.read_text())
    assert commands, f"{guide.name} shows no nnformer command"
    for command in commands:
        try:
            build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit as e:  # a flag or verb the CLI does not have
            pytest.fail(f"{guide.name}: `{command}` is refused by the CLI (exit {e.code})")


def test_guide_links_point_at_files_of_the_repository():
    for guide in [*GUIDES, ROOT / "docs" / "README.md", ROOT / "docs" / "api.md", ROOT / "docs" / "method.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", guide.read_text()):
            assert (guide.parent / target).exists(), f"{guide.name} links to {target}, which does not exist"


@pytest.mark.slow
def test_rank_your_search_space_runs_as_written(tmp_path):
    text = (ROOT / "docs" / "guides" / "rank-your-search-space.md").read_text()
    code = _blocks(text, "python")[0]
    (tmp_path / "guide.py").write_text(code)
    r = subprocess.run([sys.executable, "guide.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    tau = float(re.search(r"Kendall's tau over all 250 cells: (\d\.\d+)", r.stdout).group(1))
    assert 0.82 < tau < 0.92  # "prints a Kendall's tau near 0.87"
    top = [ln for ln in r.stdout.splitlines() if "predicted" in ln]
    assert len(top) == 3 and all(ln.endswith("skip=True") for ln in top)  # "all with the skip edge"
    assert (tmp_path / "runs" / "my-space" / "predictor" / "weights.safetensors").is_file()
