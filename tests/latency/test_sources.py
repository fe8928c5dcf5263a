"""Latency sources (nnformer.latency.sources) and the calibrated random split of the HELP latency protocol."""

import numpy as np
import pytest

from nnformer.errors import DataError, NNFormerError
from nnformer.latency.sources import load_latency_data, parse_source
from nnformer.protocols import MIN_CALIBRATION, MIN_TEST, calibrated_random_split


def test_parse_source_reads_every_form_and_refuses_the_rest(tmp_path):
    s = parse_source("help-fbnet:pixel2")
    assert (s.kind, s.device, s.name, s.title) == ("help-fbnet", "pixel2", "help-fbnet-pixel2",
                                                   "HELP FBNet latency on pixel2")
    d = parse_source(str(tmp_path))
    assert d.kind == "dataset" and d.path == tmp_path and d.name == f"dir:{tmp_path}"
    for bad in ("", None, "help-nb201", "help-nb201:", "nb201:fpga", str(tmp_path / "missing")):
        with pytest.raises(NNFormerError, match="must be help-nb201:DEVICE") as e:
            parse_source(bad)
        assert "\n" not in str(e.value)


def test_help_labels_come_with_their_graphs(data_dir):
    data = load_latency_data("help-nb201:fpga", data_dir)
    assert len(data.graphs) == len(data.ms) == 15_625 and (data.ms > 0).all() and data.families is None
    with pytest.raises(NNFormerError, match="unknown HELP device 'tpu'"):
        load_latency_data("help-nb201:tpu", data_dir)
    with pytest.raises(NNFormerError, match="--correct-drift needs a latency dataset directory"):
        load_latency_data("help-nb201:fpga", data_dir, correct_drift=True)


@pytest.mark.parametrize("n_total, n_train", [(15_625, 100), (15_625, 1000), (200, 150), (10, 6)])
def test_calibrated_random_split_partitions_and_repeats(n_total, n_train):
    a = calibrated_random_split(n_total, n_train, seed=3)
    assert len(a.train) == n_train and len(a.val) == 0
    assert len(a.cal) == min((n_total - n_train) // 2, max(20, n_train // 10))
    parts = np.concatenate([a.train, a.cal, a.test])
    assert np.array_equal(np.sort(parts), np.arange(n_total))  # disjoint, and every cell is in one part
    b = calibrated_random_split(n_total, n_train, seed=3)
    assert all(np.array_equal(x, y) for x, y in ((a.train, b.train), (a.cal, b.cal), (a.test, b.test)))
    assert not np.array_equal(calibrated_random_split(n_total, n_train, seed=4).cal, a.cal)


def test_calibrated_random_split_leaves_enough_out():
    least = MIN_CALIBRATION + MIN_TEST
    calibrated_random_split(100, 100 - least)
    with pytest.raises(DataError, match=f"at least {least} must stay out"):
        calibrated_random_split(100, 100 - least + 1)
