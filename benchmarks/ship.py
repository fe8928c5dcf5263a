"""Publish a finished latency training run as a shipped predictor (package data, registry entry with sha256).

    python benchmarks/ship.py RUN_DIR --name cpu-ort-b1 --version 1 --description "..." [--home-probe DEV.json]
    python benchmarks/ship.py --base cpu-zoo-ort-b1@3 --version 4 --home-probe datasets/zoo-ort-t1-b1/probe.json

RUN_DIR is the output of `nnformer train --task latency --data DATASET_DIR|help-nb201:DEVICE --out RUN_DIR`
(predictor.pt and metrics.json); the device and runtime come from the dataset's meta.json (or name the HELP device),
the held-out metrics from metrics.json.
The predictor's files go to nnformer/predictors/NAME/VERSION/ and its entry to nnformer/predictors/registry.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nnformer import Predictor, shipped  # noqa: E402


def _with_home(p, path: str | None, device: str, runtime: str) -> None:
    """Keep the probe of the predictor's own device in its header (``home_probe``), checked to be of that device:
    `nnformer predict --device` then maps by the references' measured latencies on both devices."""
    if not path:
        return
    from nnformer.latency.probe import HOME_KEY, home_record, load_profile

    prof = load_profile(path)
    if prof.environment.get("cpu", "?") not in device or f"{prof.threads} thread(s), batch {prof.batch}" not in runtime:
        raise SystemExit(f"{path} ({prof.name}) is not a probe of the predictor's device ({device}, {runtime})")
    p.header_ = {**p.header_, HOME_KEY: home_record(prof)}


def republish(args) -> None:
    """A shipped predictor again as a new version, its network and registry entry unchanged, with additions to its
    header (``--home-probe``)."""
    entry = shipped.resolve(args.base)
    p = shipped.load(args.base)
    _with_home(p, args.home_probe, entry.device, entry.runtime)
    extra = {**entry.extra, "republished_from": entry.spec, "republish_command": "python " + " ".join(sys.argv),
             **({"home_probe": args.home_probe} if args.home_probe else {})}
    new = shipped.publish(p, entry.name, args.version, description=entry.description, device=entry.device,
                          runtime=entry.runtime, data=entry.data, metrics=entry.metrics, command=entry.command,
                          extra=extra)
    print(f"published {new.spec}: {entry.spec} with {', '.join(k for k in ('home_probe',) if k in p.header_)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", help="a finished `nnformer train --task latency --data DIR` output folder")
    ap.add_argument("--base", metavar="NAME@VERSION", help="instead of a run: a shipped predictor, published again "
                                                           "as --version with the additions below")
    ap.add_argument("--name")
    ap.add_argument("--version", required=True)
    ap.add_argument("--description")
    ap.add_argument("--home-probe", metavar="DEV.json", help="the probe of the device the training latencies were "
                                                               "measured on, kept in the predictor's header")
    args = ap.parse_args()
    if args.base:
        return republish(args)
    if not (args.run and args.name and args.description):
        ap.error("a run folder, --name and --description are needed (or --base NAME@VERSION)")
    run = Path(args.run)
    m = json.loads((run / "metrics.json").read_text())
    p = Predictor.load(run / "predictor.pt")
    held = {"n_test": m["n_test"], "mape": round(m["mape"], 2), "acc10": round(m["acc10"], 1),
            "acc5": round(m["acc5"], 1), "spearman": round(m["spearman_test"], 4)}
    if "interval" in m:
        held["interval_coverage"] = round(m["interval"]["coverage"], 1)
        held["interval_level"] = m["interval"]["level"]
    if m["space"].startswith("dir:"):  # a dataset of `nnformer profile`: its meta.json says where and how
        data = Path(m["space"].removeprefix("dir:"))
        meta = json.loads((data / "meta.json").read_text())
        env, st = meta["environment"], meta["settings"]
        device = f"{env['cpu']} CPU ({env['cpu_count']} cores)"
        runtime = (f"ONNX Runtime {env['onnxruntime']} {env['provider']}, {st['threads']} thread(s), "
                   f"batch {st['batch']}")
        source = (f"{data.as_posix()} ({m['n_train']} models of {len(m['families'])} families train, "
                  f"{m.get('n_calibration', 0)} calibrate the interval, {m['n_test']} held out: {m['split']})")
        held["per_family_mape"] = {k: round(v, 2) for k, v in m["per_family_mape"].items()}
    else:  # HELP's measurements of one device
        device = m["space"].removeprefix("help-nb201-").removeprefix("help-fbnet-")
        runtime = "HELP's measurements (Lee et al., NeurIPS 2021)"
        source = (f"HELP's {'FBNet' if 'fbnet' in m['space'] else 'NAS-Bench-201'} latencies on {device} "
                  f"({m['n_train']:,} random architectures train, {m.get('n_calibration', 0):,} calibrate the "
                  f"interval, "
                  f"{m['n_test']:,} held out)")
    _with_home(p, args.home_probe, device, runtime)
    entry = shipped.publish(p, args.name, args.version, description=args.description, device=device,
                             runtime=runtime, data=source, metrics=held, command=m["command"],
                             extra={"code": m["code"], "trained_on_machine": m["machine"],
                                    **({"home_probe": args.home_probe} if args.home_probe else {})})
    size = sum((entry.path() / f).stat().st_size for f in entry.files)
    print(f"published {entry.spec}: {entry.path()} ({size / 1e6:.2f} MB), held-out MAPE {held['mape']}%")


if __name__ == "__main__":
    main()
