"""Shipped predictors: named, versioned, checked by sha256, stored as safetensors weights and a JSON config.

``nnformer/predictors/registry.json`` lists them; each entry names its files (``<name>/<version>/config.json`` and
``weights.safetensors`` inside the package) with their sha256, the device and runtime its latencies were measured
on, its training data and its metrics on held-out data. :func:`load` checks both files against the registry before
parsing either, so a tampered or truncated file is refused in one line; nothing is ever unpickled.

    >>> from nnformer import shipped
    >>> [f"{e.name}@{e.version}" for e in shipped.entries()]  # doctest: +SKIP
    ['cpu-ort-b1@1']
    >>> p = shipped.load("cpu-ort-b1")  # the latest version; "cpu-ort-b1@1" names one  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CheckpointError, NNFormerError

ROOT = Path(__file__).resolve().parent / "predictors"
DEFAULT_LATENCY = "cpu-zoo-ort-b1"  # what `nnformer predict model.onnx` uses without --predictor


@dataclass(frozen=True)
class Entry:
    name: str
    version: str
    task: str
    description: str
    device: str  # where the training latencies were measured
    runtime: str  # how (engine, threads, batch)
    data: str  # what it was trained on
    metrics: dict  # on held-out data
    files: dict  # file name -> sha256
    command: str = ""  # the command that trained it
    extra: dict = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def path(self, root: Path | None = None) -> Path:
        return (root or ROOT) / self.name / self.version

    def describe(self) -> str:
        """The entry as ``nnformer predictors`` lists it, in four lines: name@version (and whether ONNX models
        default to it), task, device and runtime; the description; the training data; the held-out metrics."""
        m = self.metrics
        held = (f"MAPE {m['mape']:g}%, Acc(10%) {m['acc10']:g}, Spearman {m['spearman']:g} on {m['n_test']:,} "
                f"models" if {"mape", "acc10", "spearman", "n_test"} <= set(m) else json.dumps(m))
        if "held_out_devices" in m:  # meta-trained over devices: each device predicted from its probe alone
            held = "; ".join(f"{d} MAPE {v['mape']:g}%, Acc(10%) {v['acc10']:g}, Spearman {v['spearman']:g}"
                             + (f", interval holds {v['interval_coverage']:g}%" if "interval_coverage" in v else "")
                             for d, v in m["held_out_devices"].items()) + f" ({m['table']})"
        if "interval_coverage" in m:
            held += f"; the {100 * m['interval_level']:g}% interval holds {m['interval_coverage']:g}% of them"
        if "unfamiliar_interval" in m:  # the wider interval for models flagged for their operator mix alone
            u = m["unfamiliar_interval"]
            held += (f"; for models unlike its training graphs, a wider interval calibrated on {u['n']} models of "
                     f"{u['families']} families it never trained on holds {u['holds_family_held_out']:g}% of "
                     f"them, each family held out of the calibration ({u['table']})")
        if self.extra.get("home_probe"):  # conditioned() maps by the references measured on both devices
            held += (f"\n  keeps the probe of its own device ({self.extra['home_probe']}): --device puts it on yours "
                     f"by the references' latencies measured on both")
        latest = self.name == DEFAULT_LATENCY and resolve(DEFAULT_LATENCY).version == self.version
        default = " (default for ONNX models)" if latest else ""
        return (f"{self.spec}{default}: {self.task} on {self.device}, {self.runtime}\n  {self.description}\n  "
                f"trained on {self.data}\n  held out: {held}")


def _version_key(v: str):
    return tuple(int(p) if p.isdigit() else p for p in v.split("."))


def entries(root: Path | None = None) -> list[Entry]:
    """Every shipped predictor, by name then version."""
    path = (root or ROOT) / "registry.json"
    try:
        rows = json.loads(path.read_text())["predictors"]
        out = [Entry(**r) for r in rows]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read the predictor registry {path}: {e}") from None
    return sorted(out, key=lambda e: (e.name, _version_key(e.version)))


def resolve(spec: str, root: Path | None = None) -> Entry:
    """The entry of ``NAME`` (its latest version) or ``NAME@VERSION``."""
    name, _, version = spec.partition("@")
    found = [e for e in entries(root) if e.name == name]
    if not found:
        names = ", ".join(dict.fromkeys(e.name for e in entries(root))) or "none"
        raise NNFormerError(f"no shipped predictor named {name!r} (shipped: {names}; `nnformer predictors` lists "
                            f"them)")
    if version:
        match = [e for e in found if e.version == version]
        if not match:
            raise NNFormerError(f"predictor {name!r} has no version {version!r} (versions: "
                                f"{', '.join(e.version for e in found)})")
        return match[0]
    return found[-1]


def verify(entry: Entry, root: Path | None = None) -> Path:
    """The entry's directory, once each of its files matches its sha256 in the registry."""
    from .io import sha256_of

    where = entry.path(root)
    for name, digest in entry.files.items():
        f = where / name
        try:
            got = sha256_of(f)
        except OSError as e:
            raise CheckpointError(f"shipped predictor {entry.spec}: cannot read {f}: {e.strerror}") from None
        if got != digest:
            raise CheckpointError(f"shipped predictor {entry.spec}: {f} does not match its sha256 in the registry "
                                  f"(tampered with or truncated; reinstall nnformer)")
    return where


def load(spec: str, root: Path | None = None):
    """The shipped predictor ``NAME[@VERSION]``, checked against the registry, as a :class:`~nnformer.Predictor`."""
    from .predictor import Predictor

    entry = resolve(spec, root)
    p = Predictor.load(verify(entry, root))
    p.card_ = {**p.card_, "name": entry.name, "version": entry.version, "device": entry.device,
               "runtime": entry.runtime}
    return p


def load_any(spec: str | os.PathLike):
    """A predictor from a path (a ``.pt`` file or a predictor directory) when one exists there, else from the
    registry: what ``--predictor`` and ``--checkpoint`` accept."""
    from .predictor import Predictor

    if os.path.exists(spec):
        return Predictor.load(spec)
    if os.sep in str(spec) or str(spec).endswith(".pt"):
        raise CheckpointError(f"no checkpoint at {spec}")
    return load(str(spec))


def predict_nb201(spec: str | os.PathLike | None, archs: list[str]) -> tuple[list[float], str]:
    """``(predictions, unit)``: what the predictor ``spec`` (a path or ``NAME[@VERSION]``, read by :func:`load_any`)
    predicts for each NAS-Bench-201 arch string of ``archs``, and the unit that follows each value as ``nnformer
    predict`` prints it (``" ms"``, ``"%"``, ...). Every arch string is checked before the predictor is read; raises
    :class:`~nnformer.errors.NNFormerError` for a malformed one, for no ``spec``, and for a predictor not trained on
    NB201 cells."""
    from .spaces.nb201 import arch_to_graph

    graphs = [arch_to_graph(a) for a in archs]  # validates every string before loading the model
    if not spec:
        raise NNFormerError("NB201 arch strings need a predictor of NB201 cells: --checkpoint PATH (an accuracy "
                            "predictor of `nnformer train`) or --predictor help-nb201-DEVICE (latency)")
    p = load_any(spec)
    if p.vocab_.name != "nb201":
        what = ("a latency predictor of ONNX graphs: give it ONNX files or --torch" if p.vocab_.name == "onnx"
                else f"a {p.task} predictor of {p.vocab_.name!r} graphs")
        raise NNFormerError(f"{spec} is {what}; NB201 arch strings need a predictor trained on NB201 cells (an "
                            f"accuracy predictor of `nnformer train`, or a shipped help-nb201-DEVICE latency "
                            f"predictor: `nnformer predictors`)")
    unit = (" ms" if p.task == "latency" else "%" if p.scale_ == 0.01 else " (accuracy, a fraction)"
            if p.scale_ == 1 else " (accuracy, in the unit of the training labels)")
    return [float(v) for v in p.predict(graphs)], unit


def publish(predictor, name: str, version: str, *, description: str, device: str, runtime: str, data: str,
            metrics: dict, command: str = "", root: Path | None = None, extra: dict | None = None) -> Entry:
    """Write ``predictor`` into the registry as ``name@version`` (files and entry; an existing entry of that name
    and version is replaced). For maintainers: ``benchmarks/ship.py`` calls it."""
    from .io import atomic_write_text
    from .io import sha256_of
    from .predictor import CONFIG_FILE, WEIGHTS_FILE

    from .latency.devices import KEY

    root = root or ROOT
    # a predictor meta-trained over devices learns z-scored log latency (task "score") but predicts milliseconds
    task = "latency" if KEY in predictor.header_ else predictor.task
    entry = Entry(name, version, task, description, device, runtime, data, metrics, {}, command,
                  dict(extra or {}))
    where = entry.path(root)
    predictor.save(where, card={"name": name, "version": version, "description": description})
    entry = Entry(**{**entry.__dict__, "files": {f: sha256_of(where / f) for f in (CONFIG_FILE, WEIGHTS_FILE)}})
    rows = [e.__dict__ for e in entries(root) if (e.name, e.version) != (name, version)] + [entry.__dict__]
    rows.sort(key=lambda r: (r["name"], _version_key(r["version"])))
    atomic_write_text(root / "registry.json", json.dumps({"predictors": rows}, indent=1) + "\n")
    return entry
