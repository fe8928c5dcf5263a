import io
import shutil
import urllib.request

import numpy as np
import pytest

from nnformer.data import registry
from nnformer.data.nb201 import LABELS, SOURCES, load_nb201
from nnformer.errors import DataError
from nnformer.spaces.nb201 import arch_to_graph

# maxima stated in ../shared/data/PROVENANCE.md
MAXIMA = {
    "cifar10_valid_val200": 91.607, "cifar10_test200": 94.373, "cifar100_test200": 73.513,
    "imagenet16_test200": 47.311, "cifar100_val200": 73.493, "imagenet16_val200": 46.733, "cifar10_val12": 84.892,
}


def test_table_has_every_cell_and_label(nb201):
    assert len(nb201) == 15625
    assert len(set(nb201.arch_strs)) == 15625
    assert set(nb201.labels) == set(LABELS)
    for name, col in nb201.labels.items():
        assert col.shape == (15625,) and np.isfinite(col).all(), name
        assert 0 < col.min() and col.max() < 100, name
    for name, mx in MAXIMA.items():
        assert nb201.labels[name].max() == pytest.approx(mx, abs=1e-3), name
    assert nb201.label("val") is nb201.labels["cifar10_valid_val200"]
    assert nb201.label("val").mean() == pytest.approx(83.69, abs=0.01)


def test_known_cell_labels(nb201):
    # index 1 of cifar10_avg.csv / nats_bench.csv
    s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert nb201.index_of(s) == 1
    assert nb201.label("val")[1] == pytest.approx(90.76933332)
    assert nb201.label("test")[1] == pytest.approx(93.66)
    assert nb201.graphs[1] == arch_to_graph(s)


def test_cache_round_trip(data_dir, nb201):
    again = load_nb201(data_dir)
    assert np.array_equal(again.arch_strs, nb201.arch_strs)
    for k in LABELS:
        assert np.array_equal(again.labels[k], nb201.labels[k])


def copy_sources(data_dir, dest):
    for name in SOURCES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / name, dest / name)


def test_altered_file_is_refused(data_dir, tmp_path, monkeypatch):
    copy_sources(data_dir, tmp_path)
    target = tmp_path / "nasbench201/mini-bench-arch-cell-accs.pd"
    raw = bytearray(target.read_bytes())
    raw[100] ^= 1
    target.write_bytes(bytes(raw))
    monkeypatch.setenv("NNFORMER_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="mini-bench-arch-cell-accs.pd has sha256 .* altered"):
        load_nb201(tmp_path)
    assert not (tmp_path / "cache").exists()  # nothing half-written


def test_missing_file_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("NNFORMER_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="nnformer data download"):
        load_nb201(tmp_path / "empty")


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("NNFORMER_DATA", str(tmp_path / "env"))
    assert registry.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert registry.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("NNFORMER_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.resolve_data_dir() == tmp_path / "xdg" / "nnformer" / "data"


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def test_download_verifies_before_keeping(data_dir, tmp_path, monkeypatch):
    name = "nasbench201/cifar100.json"
    good = (data_dir / name).read_bytes()
    urls = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: urls.append(url) or FakeResponse(good))
    [path] = registry.download([name], tmp_path, progress=False)
    assert path.read_bytes() == good
    assert urls == [registry.RAW_FILES[name].url]
    assert "791b2b287d9007f781f90b8731624a833964d79f" in urls[0]
    # a tampered download is refused and leaves nothing behind
    path.unlink()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: FakeResponse(good.replace(b"9", b"8", 1)))
    with pytest.raises(DataError, match="sha256"):
        registry.download([name], tmp_path, progress=False)
    assert list((tmp_path / "nasbench201").iterdir()) == []


def test_registry_hashes_match_shared_data(data_dir):
    for name, spec in registry.RAW_FILES.items():
        assert registry.sha256_of(data_dir / name) == spec.sha256, name
