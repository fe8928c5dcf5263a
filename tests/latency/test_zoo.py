"""The zoo's timm and transformers families, and the OpenVINO runtime: run in the zoo environment
(`pip install -e ".[zoo,test]"`, `pytest -m zoo`; .ci/run's second environment step)."""

import pytest

pytest.importorskip("timm")
pytest.importorskip("transformers")

from nnformer.latency import runtimes, zoo  # noqa: E402
from nnformer.latency.families import build, sample  # noqa: E402
from nnformer.latency.onnx_graph import export_onnx, onnx_to_graph  # noqa: E402
from nnformer.latency.profiler import measure, profile_dataset  # noqa: E402
from nnformer.latency.dataset import load_dataset  # noqa: E402

pytestmark = [pytest.mark.zoo, pytest.mark.usefixtures("one_thread")]

LIBRARY_FAMILIES = [f for f, lib in zoo.ZOO_FAMILIES.items() if lib != "torch"]


@pytest.mark.parametrize("family", LIBRARY_FAMILIES)
def test_every_library_family_builds_exports_and_converts(family):
    """A model of each family exports to ONNX and converts to a graph whose FLOPs are known (the transformers
    families need the symbolic shape inference for that: attention shapes go through ops ONNX cannot fold)."""
    spec = sample(family, 0, 1)
    assert spec == sample(family, 0, 1) and spec.params["library"] == zoo.ZOO_FAMILIES[family]
    m = build(spec)
    g, st = onnx_to_graph(export_onnx(m, zoo.example_input(m, spec.input_shape), None))
    assert g.num_nodes > 10 and st["flops"] > 0 and st["params"] > 0


def test_zoo_versions_name_the_libraries():
    v = zoo.versions()
    assert {"torch", "timm", "transformers"} <= set(v)


def test_openvino_and_torch_runtimes_label_a_dataset(tmp_path):
    pytest.importorskip("openvino")
    for rt in ("openvino", "torch"):
        counts = profile_dataset(["timm-lcnet", "hf-bert"], 1, tmp_path / rt, runtime=rt, budget_s=0.2,
                                 progress=False, reference_every=0)
        assert counts["measured"] == 2, counts
        rows = load_dataset(tmp_path / rt)
        assert all(r["latency_ms"] > 0 for r in rows)
    spec = sample("timm-mobilenetv3", 0, 0)
    onnx_bytes = export_onnx(build(spec), spec.input_shape, None)
    assert measure(runtimes.runner("openvino", onnx_bytes), warmup=1, runs=2, rounds=2).latency_ms > 0
