"""Build the API reference from the installed package's docstrings with pdoc (see docs/api.md).

    python docs/build_api.py [OUT_DIR]        # default build/api; open OUT_DIR/index.html

pdoc documents only the submodules that a package's ``__all__`` names, and ``nnformer.__all__`` lists the top-level
API (``Predictor``, ``ArchGraph``, ...), so the modules are named here: the package, then every module directly in it
(pdoc walks the subpackages from there). A warning from pdoc (a module that fails to import, a type hint that does
not resolve) fails the build, so a broken docstring or signature is caught where CI runs this.
"""

from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path

import nnformer


def modules() -> list[str]:
    """``nnformer`` and its direct submodules and subpackages (``__main__`` runs the CLI when imported: left out)."""
    children = [m.name for m in pkgutil.iter_modules(nnformer.__path__) if m.name != "__main__"]
    return ["nnformer"] + [f"nnformer.{name}" for name in children]


def build(out: str | Path = "build/api") -> Path:
    """Write the HTML reference into ``out``; raises RuntimeError listing pdoc's warnings if there were any."""
    import pdoc

    pdoc.render.configure(docformat="google")  # Args:/Returns:/Example: sections; reST roles are rendered too
    out = Path(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules(), output_directory=out)
    problems = [str(w.message).splitlines()[0] for w in caught if "pdoc" in Path(w.filename).parts]
    if problems:  # pdoc's own warnings; a library's deprecation notice on import is not the reference's problem
        raise RuntimeError("pdoc warned:\n" + "\n".join(problems))
    return out


if __name__ == "__main__":
    target = build(sys.argv[1] if len(sys.argv) > 1 else "build/api")
    print(f"API reference: {target / 'index.html'}")
