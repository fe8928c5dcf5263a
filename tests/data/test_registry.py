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


def test_a_failed_download_removes_every_folder_it_made(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="could not download"):
        registry.download(["latency/help/nasbench201/latency/fpga.pt"], tmp_path / "a" / "b", progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the data directory, its parent, nor the folders below it


def _offline_download(monkeypatch) -> list:
    """Every call of the download function, recorded as (names, data directory); each fails as offline."""
    calls = []

    def download(names, data_dir=None, progress=True):
        calls.append((sorted(names), str(data_dir)))
        raise DataError("offline")

    monkeypatch.setattr(registry, "download", download)
    return calls


def test_train_and_search_fetch_missing_data_the_same_way(tmp_path, monkeypatch, capsys):
    from nnformer.cli import main

    calls = _offline_download(monkeypatch)
    empty = tmp_path / "data"
    empty.mkdir()
    assert main(["train", "--n-train", "10", "--out", str(tmp_path / "t"), "--data-dir", str(empty), "--quiet"]) == 2
    assert main(["search", "--method", "random", "--out", str(tmp_path / "s"), "--data-dir", str(empty),
                 "--quiet"]) == 2
    assert calls == [(sorted(SOURCES), str(empty))] * 2  # the same files, into the same directory
    assert capsys.readouterr().err.count("nnformer: error: offline") == 2
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("verb", [
    ["train", "--n-train", "10", "--quiet"],
    ["search", "--method", "random", "--quiet"],
    ["score", "--checkpoint", "help-nb201-fpga", "--quiet"],
])
def test_a_mistyped_data_dir_is_refused_not_created(verb, tmp_path, monkeypatch, capsys):
    from nnformer.cli import main

    calls = _offline_download(monkeypatch)
    missing = tmp_path / "no" / "such" / "dir"
    out = tmp_path / ("s.csv" if verb[0] == "score" else "out")
    assert main([*verb, "--out", str(out), "--data-dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--data-dir {missing} does not exist" in err and "nnformer data download" in err
    assert err.count("\n") == 1 and calls == []  # refused before any download was tried
    assert list(tmp_path.iterdir()) == []  # nothing made: not the data directory, not --out
    monkeypatch.setenv("NNFORMER_DATA", str(missing))  # the same for a mistyped $NNFORMER_DATA
    assert main([*verb, "--out", str(out)]) == 2
    assert "$NNFORMER_DATA" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
