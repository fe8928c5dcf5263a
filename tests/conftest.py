import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# property tests draw the same examples on every run (a CI failure reproduces); set HYPOTHESIS_RANDOM=1 to explore
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("random")
settings.load_profile("random" if os.environ.get("HYPOTHESIS_RANDOM") else "fixed")

REPO = Path(__file__).resolve().parents[1]
# the benchmark files: $NNFORMER_DATA when set, else ../shared/data beside the clone (read before the fixture below
# hides the variable from the code under test)
SHARED_DATA = Path(os.environ.get("NNFORMER_DATA") or REPO.parent / "shared" / "data")
_MISSING_DATA: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory):
    """Processed tables go to a per-session temp dir, never the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NNFORMER_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.delenv("NNFORMER_DATA", raising=False)
    torch.set_num_threads(2)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def data_dir(request) -> Path:
    if not (SHARED_DATA / "nasbench201" / "cifar10_avg.csv").is_file():
        why = f"benchmark data not found at {SHARED_DATA} (set NNFORMER_DATA to the directory of the benchmark files)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI has the data: a missing directory is a broken set-up, not a reason to skip
        _MISSING_DATA.append(request.node.nodeid)
        pytest.skip(why)
    return SHARED_DATA


def pytest_terminal_summary(terminalreporter):
    """Say loudly, at the end of the run, how many tests did not run for want of the data."""
    if _MISSING_DATA:
        terminalreporter.write_sep("!", f"{len(_MISSING_DATA)} test(s) needing the benchmark data were SKIPPED: "
                                        f"no data at {SHARED_DATA}; set NNFORMER_DATA", red=True)


@pytest.fixture(scope="session")
def nb201(data_dir):
    from nnformer.data.nb201 import load_nb201

    return load_nb201(data_dir)


@pytest.fixture(scope="module")
def one_thread():
    """Model-building tests run on one torch thread (small ops; less contention with parallel work)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


LATENCY_DATASET = REPO / "datasets" / "latency-cpu-b1"


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """Six models each of two families of the committed dataset, as a dataset directory."""
    out = tmp_path_factory.mktemp("ds")
    keep = {f"{f}-{i:05d}" for f in ("resnet", "mobilenetv3") for i in range(6)}
    with gzip.open(LATENCY_DATASET / "graphs.jsonl.gz", "rt") as f:
        lines = [ln for ln in f if json.loads(ln)["id"] in keep]
    (out / "graphs.jsonl").write_text("".join(lines))
    lat = [ln for ln in (LATENCY_DATASET / "latency.jsonl").read_text().splitlines() if json.loads(ln)["id"] in keep]
    (out / "latency.jsonl").write_text("\n".join(lat) + "\n")
    shutil.copy(LATENCY_DATASET / "meta.json", out / "meta.json")
    return out
