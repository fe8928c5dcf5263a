"""The import graph says the architecture: no cycles, and the harness (``nnformer reproduce``) sits on top of the
library, called by the command line only."""

import ast
from pathlib import Path

import nnformer

ROOT = Path(nnformer.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = ("nnformer",) + p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """Every nnformer module ``name`` imports, at the top or inside a function (a lazy import is still a
    dependency)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t not in modules and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in modules and t != name and t.startswith("nnformer"):
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    for m in graph:  # a package's __init__ is imported with each of its modules; it is not a dependency of them
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    return graph


def test_the_import_graph_has_no_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            assert state.get(d) != 1, "import cycle: " + " -> ".join(path[path.index(d):] + [d])
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_only_the_command_line_imports_the_harness():
    graph = _graph()
    into = {m for m, deps in graph.items() for d in deps
            if d.startswith("nnformer.harness") and not m.startswith("nnformer.harness")}
    assert into == {"nnformer.cli"}


def test_the_graph_is_read_as_python_reads_it():
    """The checks above see real edges (a reader that saw none would pass them)."""
    graph = _graph()
    assert "nnformer.model" in graph["nnformer.regressors"] and "nnformer.baselines" in graph["nnformer.regressors"]
    assert "nnformer.harness.engine" in graph["nnformer.harness.sweep"]  # relative, from a subpackage
    assert "nnformer.latency.onnx_graph" in graph["nnformer.latency.profiler"]
    assert "nnformer.harness.reproduce" in graph["nnformer.cli"]  # inside a function


def test_tests_are_laid_out_like_the_package():
    """Each subpackage of nnformer with tests has them in the folder of the same name (tests/latency for
    nnformer/latency, ...), and no test file sits in a folder the package does not have (but benchmarks/)."""
    tests = Path(__file__).parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders <= packages | {"benchmarks"}, folders - packages
    assert {"harness", "latency", "data", "spaces"} <= folders
