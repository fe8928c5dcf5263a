"""Train and publish a latency predictor meta-trained over several device settings (conditioned on each one's probe).

    python benchmarks/ship_devices.py --data DIR1,DIR2,... --lodo TABLE_DIR --name NAME --version V \
        --description "..." [--set KEY=VALUE ...] [--seed 0]

Each DIR is a latency dataset with its device's probe as DIR/probe.json (what `nnformer reproduce devices` reads;
the models measured on every device take part). Of every family the last model (by sample index) calibrates the
90% interval, over all devices each through its own probe; the rest train. The first DIR is the predictor's home
device: what `nnformer predict` predicts for without `--device`. The held-out numbers published with it come from
the leave-one-device-out table of the same devices, recipe and settings (TABLE_DIR: the folder of its
table.json, written by `nnformer reproduce devices`): the predictor itself has no held-out device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import command  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="comma-separated latency datasets, each with probe.json")
    ap.add_argument("--lodo", required=True, help="the folder of `nnformer reproduce devices`' table.json")
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--description", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from nnformer import shipped
    from nnformer.harness.device_sweep import load_devices
    from nnformer.latency.devices import calibrate_on, meta_fit
    from nnformer.machine import code_version, describe_line
    from nnformer.recipes import parse_settings, typed_settings

    settings = typed_settings(parse_settings(args.set))
    paths = [p.strip() for p in args.data.split(",") if p.strip()]
    lodo = json.loads((Path(args.lodo) / "table.json").read_text())
    data = load_devices(paths)
    fam, index = np.asarray(data.families), data.index
    cal = np.array(sorted(int(np.flatnonzero(fam == f)[np.argmax(index[fam == f])]) for f in sorted(set(fam))))
    train = np.setdiff1d(np.arange(len(fam)), cal)
    t0 = time.perf_counter()
    p = meta_fit([([d.graphs[i] for i in train], d.ms[train], d.profile) for d in data.devices], recipe="networks",
                 settings={**settings, "seed": args.seed}, home=data.devices[0].profile)
    calibrate_on(p, [([d.graphs[i] for i in cal], d.ms[cal], d.profile) for d in data.devices])
    train_s = time.perf_counter() - t0
    held = {k.split("|")[1]: v for k, v in lodo["summary"].items() if k.startswith("meta-nnformer|")}
    if not held:
        raise SystemExit(f"{args.lodo}/table.json has no meta-nnformer rows")
    metrics = {"held_out_devices": {h: {"mape": round(v["mape"][0], 2), "acc10": round(v["acc10"][0], 1),
                                        "spearman": round(v["spearman_test"][0], 4), "seeds": v["k"],
                                        **({"interval_coverage": round(v["coverage"][0], 1)} if v["coverage"]
                                           else {})}
                                    for h, v in held.items()},
               "table": str(Path(args.lodo) / "table.md"), "interval_level": 0.9}
    home = data.devices[0].profile
    entry = shipped.publish(
        p, args.name, args.version, description=args.description, device=f"{home.environment.get('cpu')} CPU, any "
        f"device setting after `nnformer device probe` (home: {home.name})",
        runtime=", ".join(d.profile.name.split(", ", 1)[1] for d in data.devices),
        data=(f"{', '.join(paths)}: {len(data.ids)} models measured on every device, {len(set(fam))} families; "
              f"{len(train)} train on each device, {len(cal)} calibrate the interval"),
        metrics=metrics, command=command(),
        extra={"code": code_version(), "trained_on_machine": describe_line(), "train_seconds": round(train_s, 1),
               "settings": settings})
    size = sum((entry.path() / f).stat().st_size for f in entry.files)
    print(f"published {entry.spec}: {entry.path()} ({size / 1e6:.2f} MB) after {train_s / 60:.1f} min of training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
