"""The runtimes a latency is measured with: ONNX Runtime, OpenVINO and PyTorch eager, on the CPU.

A *device*, for nnformer, is a machine together with a runtime and its settings (threads, batch): the same model
runs at different speeds under ONNX Runtime with 1 or 2 threads, under OpenVINO, or in PyTorch eager mode, and a
latency label means nothing without them. :func:`runner` returns a zero-argument callable that runs the model
once (what :func:`nnformer.latency.profiler.measure` times); :func:`versions` records what ran it.

ONNX Runtime and OpenVINO run the exported ONNX file (OpenVINO reads ONNX directly); PyTorch eager runs the module
itself under ``torch.inference_mode`` with ``torch.set_num_threads(threads)``, so it needs the module, not a file.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from ..errors import NNFormerError, OnnxError, one_line

RUNTIMES = ("onnxruntime", "openvino", "torch")
_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "torch"}
_EXTRAS = {"onnxruntime": "latency", "openvino": "zoo", "torch": "latency"}


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise OnnxError("timing needs the 'onnxruntime' package: pip install 'nnformer[latency]'") from None
    return onnxruntime


_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
           "tensor(bool)": np.bool_}


def session(model: str | os.PathLike | bytes, threads: int = 1, optimize: bool = True):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads, one inter-op thread and all graph
    optimisations (what a deployment would run; ``optimize=False``: none, so every operator of the file runs and its
    outputs can be read). Raises :class:`OnnxError` when ONNX Runtime rejects the model."""
    ort = _ort()
    if threads < 1:
        raise NNFormerError(f"threads must be >= 1, got {threads}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3  # errors only: warnings about unused initializers would break the progress bar
    try:
        src = os.fspath(model) if isinstance(model, (str, os.PathLike)) else model
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... classes
        raise OnnxError(f"ONNX Runtime cannot load the model: {one_line(e)}") from None


def feeds(sess, batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every session input; a symbolic first dimension becomes ``batch`` (default 1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for inp in sess.get_inputs():
        shape = []
        for axis, d in enumerate(inp.shape):
            if isinstance(d, int) and d > 0:
                shape.append(d)
            elif axis == 0:
                shape.append(int(batch or 1))
            else:
                raise OnnxError(f"input {inp.name!r} has a dynamic dimension {d!r} on axis {axis}; "
                                f"export the model with a static input shape")
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise OnnxError(f"input {inp.name!r} has type {inp.type}, which the profiler cannot generate")
        out[inp.name] = (rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                         else np.zeros(shape, dtype=dtype))
    return out


def check_runtime(runtime: str) -> str:
    """``runtime`` if it is one of :data:`RUNTIMES` and its package imports; a one-line error otherwise."""
    if runtime not in RUNTIMES:
        raise NNFormerError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    _module(runtime)
    return runtime


def _module(runtime: str):
    try:
        return importlib.import_module(_PACKAGES[runtime])
    except ImportError:
        raise OnnxError(f"timing with {runtime} needs the {_PACKAGES[runtime]!r} package: "
                        f"pip install 'nnformer[{_EXTRAS[runtime]}]'") from None


def versions(runtime: str) -> dict[str, str]:
    """The runtime's name and version (``{"runtime": "openvino", "openvino": "2026.4.1"}``)."""
    return {"runtime": runtime, runtime: _module(runtime).__version__}


def runner(runtime: str, onnx_model: str | os.PathLike | bytes | None, *, threads: int = 1, batch: int | None = None,
           module=None, example=None):
    """A callable that runs the model once on ``runtime``, after one checked run (errors surface here).

    Args:
        runtime: one of :data:`RUNTIMES`.
        onnx_model: the ONNX model (path or bytes) for ONNX Runtime and OpenVINO.
        threads: intra-op threads.
        batch: the batch size for a symbolic batch dimension of the ONNX inputs (default 1).
        module, example: the ``torch.nn.Module`` and its example input, for ``torch``.

    Raises:
        OnnxError: the runtime cannot load or run the model, or is not installed.
    """
    check_runtime(runtime)
    if threads < 1:
        raise NNFormerError(f"threads must be >= 1, got {threads}")
    if runtime == "torch":
        return _torch_runner(module, example, threads)
    if onnx_model is None:
        raise NNFormerError(f"timing with {runtime} needs an ONNX model")
    if runtime == "openvino":
        return _openvino_runner(onnx_model, threads, batch)
    sess = session(onnx_model, threads)
    x = feeds(sess, batch)
    return _checked(lambda: sess.run(None, x), "ONNX Runtime")


def _checked(run, name: str):
    try:
        run()
    except Exception as e:  # noqa: BLE001 - each runtime raises its own classes
        raise OnnxError(f"{name} failed to run the model: {one_line(e)}") from None
    return run


def _torch_runner(module, example, threads: int):
    torch = _module("torch")
    if module is None or example is None:
        raise NNFormerError("timing with torch needs the PyTorch module and an example input (not an ONNX file)")
    torch.set_num_threads(int(threads))
    module = module.eval()

    def run():
        with torch.inference_mode():
            return module(example)

    return _checked(run, "PyTorch")


def _openvino_runner(onnx_model, threads: int, batch: int | None):
    ov = _module("openvino")
    core = ov.Core()
    try:
        if isinstance(onnx_model, (bytes, bytearray)):
            model = core.read_model(model=bytes(onnx_model), weights=b"")
        else:
            model = core.read_model(os.fspath(onnx_model))
        shapes = []  # by position: a tensor may carry several names, and get_any_name picks any of them
        for inp in model.inputs:
            ps = inp.get_partial_shape()
            dims = [d.get_length() if d.is_static else (int(batch or 1) if i == 0 else -1) for i, d in enumerate(ps)]
            if -1 in dims:
                raise OnnxError(f"input {inp.get_any_name()!r} has a dynamic dimension; export it with a static shape")
            shapes.append(dims)
        model.reshape({inp: ov.PartialShape(dims) for inp, dims in zip(model.inputs, shapes)})
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": int(threads),
                                                     "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
    except OnnxError:
        raise
    except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError and its own classes
        raise OnnxError(f"OpenVINO cannot load the model: {one_line(e)}") from None
    rng = np.random.default_rng(0)
    inputs = []
    for inp, shape in zip(compiled.inputs, shapes):
        dtype = inp.get_element_type().to_dtype()
        inputs.append(rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                      else np.zeros(shape, dtype=dtype))
    request = compiled.create_infer_request()
    return _checked(lambda: request.infer(inputs), "OpenVINO")
