"""A PyTorch model named on the command line (``module:callable`` or ``path/to/file.py:callable``), loaded for
`nnformer predict --torch`: imported, called, checked, with its example input shape."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import NNFormerError, one_line

MAX_INPUT_ELEMENTS = 1 << 26  # --input-shape: 67,108,864 elements, 256 MiB of float32 (e.g. 256 x 3 x 256 x 256)


def load_torch_model(spec: str, shape: str | None):
    """``module:callable`` or ``path/to/file.py:callable`` -> (the module it returns, in eval mode, and the example
    input shape parsed from ``shape``, e.g. ``"1,3,224,224"``); a module is imported from the working directory as
    Python would, a file from its path. What `nnformer predict --torch SPEC --input-shape SHAPE` loads: every
    problem is one :class:`~nnformer.errors.NNFormerError` line naming the option."""
    import importlib
    import math

    if not shape:
        raise NNFormerError("--torch needs --input-shape (e.g. 1,3,224,224)")
    try:
        dims = tuple(int(d) for d in shape.split(","))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise NNFormerError(f"--input-shape must be positive integers separated by commas, got {shape!r}")
    if (n := math.prod(dims)) > MAX_INPUT_ELEMENTS:
        raise NNFormerError(f"--input-shape {shape} is {n:,} elements ({4 * n / 2**30:,.1f} GiB of float32), above "
                            f"the {MAX_INPUT_ELEMENTS:,} (256 MiB) an example input may have: the model is run once "
                            f"on it to export its graph")
    mod_name, _, attr = spec.rpartition(":")  # the last colon: a Windows path has one of its own
    if not mod_name or not attr:
        raise NNFormerError(f"--torch must be module:callable or path/to/file.py:callable (e.g. mymodels:resnet), "
                            f"got {spec!r}")
    from_file = mod_name.endswith(".py") or "/" in mod_name or os.sep in mod_name
    if from_file and not os.path.isfile(mod_name):
        raise NNFormerError(f"--torch {spec}: no Python file at {mod_name}")
    folder = os.path.dirname(os.path.abspath(mod_name)) if from_file else os.getcwd()
    sys.path.insert(0, folder)  # a file imports its neighbours as it would when run there
    try:
        obj = _import_file(mod_name) if from_file else importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        model = obj() if callable(obj) and not hasattr(obj, "forward") else obj
    except ImportError as e:
        raise NNFormerError(f"--torch {spec}: cannot import {mod_name!r}: {one_line(e)}") from None
    except AttributeError:
        raise NNFormerError(f"--torch {spec}: {mod_name!r} has no {attr!r}") from None
    except Exception as e:  # the user's own code failed while building the model
        raise NNFormerError(f"--torch {spec}: building the model failed: {type(e).__name__}: {one_line(e)}") from None
    finally:
        sys.path.remove(folder)
    import torch

    if not isinstance(model, torch.nn.Module):
        raise NNFormerError(f"--torch {spec} gave a {type(model).__name__}, not a torch.nn.Module")
    return model.eval(), dims


def _import_file(path: str):
    """The module of the Python file at ``path`` (run as ``python path`` would import it, under its file name)."""
    import importlib.util

    name = Path(path).stem
    if name in sys.modules:  # never shadow a module already imported (a file named json.py, models.py, ...)
        name = f"nnformer_torch_file_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling and the like look their module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
