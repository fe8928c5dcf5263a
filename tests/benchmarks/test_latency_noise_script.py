"""benchmarks/latency_noise.py: the figures a dataset's README states about its labels (comparison of two datasets
of the same models, drift-corrected drift over the run)."""

import datetime
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import pytest  # noqa: E402

from benchmarks import latency_noise  # noqa: E402


def _dataset(path: Path, ms: list[float], start: datetime.datetime) -> list[dict]:
    path.mkdir()
    rows = [{"id": f"f-{i:05d}", "family": "f", "index": i, "status": "ok", "latency_ms": v, "flops": 1e6 * (i % 7 + 1),
             "params": 1e3 * (i % 7 + 1), "memory_access": 1e4 * (i % 7 + 1),
             "measured_at": (start + datetime.timedelta(seconds=10 * i)).isoformat()} for i, v in enumerate(ms)]
    (path / "latency.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_against_compares_the_same_models_of_two_datasets(tmp_path):
    t0 = datetime.datetime(2026, 1, 1)
    first = _dataset(tmp_path / "a", [1.0, 2.0, 4.0, 8.0], t0)
    _dataset(tmp_path / "b", [1.1, 2.2, 4.4, 8.8, 5.0], t0)  # 10% slower; its fifth model is not in the first
    text = latency_noise.against(tmp_path / "a", first, tmp_path / "b")
    assert "(4 models measured in both)" in text and "MAPE 9.09%" in text  # |1/1.1 - 1|
    assert "median ratio this / that 0.909" in text and "divided by it, 0.00%" in text
    assert latency_noise.against(tmp_path / "a", first, tmp_path / "a").count("MAPE 0.00%") == 1
    _dataset(tmp_path / "c", [3.0], t0 + datetime.timedelta(days=1))
    assert latency_noise.against(tmp_path / "a", [{"id": "x"}], tmp_path / "c") == ""  # no model in common


def _tenths(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"(\d\.\d{3}) \(\d\d-\d\d ", text)]


def test_reference_drift_states_the_corrected_drift(tmp_path):
    t0 = datetime.datetime(2026, 1, 1)
    # 200 models 10 s apart, the second half measured while the host ran twice as slow; the reference, timed
    # alongside, saw it
    ms = [float(i % 7 + 1) * (2.0 if i >= 100 else 1.0) for i in range(200)]
    rows = _dataset(tmp_path / "d", ms, t0)
    (tmp_path / "d" / "reference.jsonl").write_text("".join(json.dumps(
        {"reference": "r", "latency_ms": 2.0 if i >= 100 else 1.0,
         "measured_at": (t0 + datetime.timedelta(seconds=10 * i)).isoformat()}) + "\n" for i in range(200)))
    raw = _tenths(latency_noise.drift_over_time(rows))
    assert len(raw) == 10 and max(raw) / min(raw) > 1.9  # the uncorrected labels jump half-way through the run
    text = latency_noise.reference_drift(tmp_path / "d", rows)
    assert "timed 200 times" in text and "1.000 / 1.500 / 2.000 ms" in text and "factors 0.667 .. 1.333" in text
    fixed = _tenths(text[text.index("Labels so corrected"):])
    assert len(fixed) == 10 and max(fixed) / min(fixed) < 1.05  # flat once corrected
    (tmp_path / "d" / "reference.jsonl").unlink()
    assert latency_noise.reference_drift(tmp_path / "d", rows) == ""


if __name__ == "__main__":
    pytest.main([__file__])
