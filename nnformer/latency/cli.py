"""The ``nnformer profile`` verb: build a latency dataset, or time one ONNX model.

Kept apart from :mod:`nnformer.cli` (which calls ``add_parser(sub)`` in its ``build_parser``); ONNX and ONNX Runtime
are imported only when a profile runs, so ``nnformer --help`` stays fast.

Usage::

    nnformer profile --families resnet,vgg --per-family 100 --out data/latency [--threads 1 --batch 1 ...]
    nnformer profile model.onnx [--threads 4]
"""

from __future__ import annotations

import argparse
import json

from pathlib import Path

from ..argtypes import batch_size, int_at_least, nonneg_int, positive_float, seed_int, thread_count
from ..errors import NNFormerError
from ..io import check_output_dir

from .families import HAND_WRITTEN
from .profiler import DEFAULTS, REFERENCE_EVERY
from .runtimes import RUNTIMES
from .zoo import ZOO_FAMILIES

# the profiler's own defaults (neither module loads ONNX or ONNX Runtime before a profile runs)
_DEFAULTS = {**DEFAULTS, "reference_every": REFERENCE_EVERY}
FAMILY_NAMES = HAND_WRITTEN  # the default


def cmd_profile(args) -> int:
    if args.model and (args.families or args.out or args.per_family is not None):
        raise NNFormerError("give either an ONNX file or --families/--per-family/--out, not both")
    if not args.model and (not args.out or args.per_family is None):
        raise NNFormerError("profile needs an ONNX file, or --per-family N and --out DIR "
                            "(and --families, default: all ten)")
    if args.out:
        check_output_dir(args.out)
    import torch

    from . import profiler

    profiler._ort()  # ONNX Runtime present, or one line before anything is exported or written
    torch.set_num_threads(args.threads)  # export and weight init: stay off the cores being measured
    if args.model:
        if args.runtime != "onnxruntime":
            raise NNFormerError("an ONNX file is timed with ONNX Runtime; --runtime applies to datasets")
        res = profiler.profile_onnx(args.model, threads=args.threads, batch=args.batch, warmup=args.warmup,
                                    runs=args.runs, rounds=args.rounds)
        print(json.dumps(res, indent=2))
        return 0
    families = args.families.split(",") if args.families else list(FAMILY_NAMES)
    families = [g for f in families for g in (ZOO_FAMILIES if f.strip() == "zoo" else [f])]
    counts = profiler.profile_dataset(families, args.per_family, args.out, seed=args.seed, threads=args.threads,
                                      batch=args.batch or _DEFAULTS["batch"], rounds=args.rounds, runs=args.runs,
                                      warmup=args.warmup, progress=not args.quiet,
                                      reference_every=args.reference_every, runtime=args.runtime,
                                      budget_s=args.budget_s)
    invalid = (f" ({counts['invalid']} invalid line{'s' if counts['invalid'] > 1 else ''} of latency.jsonl removed "
               f"and measured again)" if counts.get("invalid") else "")
    print(f"nnformer profile: {counts['measured']} measured, {counts['failed']} failed, {counts['skipped']} already "
          f"in {counts['out']}{invalid}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``profile`` on the main parser's subparsers (``nnformer.cli.build_parser``)."""
    p = subparsers.add_parser(
        "profile", help="measure ONNX Runtime CPU latency: build a latency dataset or time one ONNX file",
        description="Sample networks of the given families, export each to ONNX, time it with ONNX Runtime on the "
                    "CPU and append graph + latency to --out (rerunning the same command resumes; failed models "
                    "are recorded and skipped). With an ONNX file instead, time that model and print JSON.")
    p.add_argument("model", nargs="?", help="an ONNX file to time (instead of building a dataset)")
    p.add_argument("--families", help=f"comma-separated families (default: the ten hand-written ones, "
                   f"{','.join(FAMILY_NAMES)}); 'zoo' = every family of the model zoo (timm, transformers and plain "
                   f"PyTorch models; timm and transformers need pip install 'nnformer[zoo]'): "
                   f"{','.join(ZOO_FAMILIES)}")
    p.add_argument("--per-family", type=int_at_least(1, 100_000),
                   help="models per family (ids <family>-00000 ...; at most 100000)")
    p.add_argument("--out", help="dataset directory (meta.json, graphs.jsonl.gz, latency.jsonl)")
    p.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default 0)")
    p.add_argument("--threads", type=thread_count, default=_DEFAULTS["threads"], help="ONNX Runtime intra-op threads "
                   "(default 1)")
    p.add_argument("--batch", type=batch_size, default=None, help="batch size (default 1; for an ONNX file, fills a "
                   "dynamic batch dimension)")
    p.add_argument("--rounds", type=int_at_least(1, 1000), default=_DEFAULTS["rounds"],
                   help="timed rounds (default 5, at most 1000); rounds "
                   "outside 1.5 IQR are dropped")
    p.add_argument("--runs", type=int_at_least(1, 100_000), default=_DEFAULTS["runs"],
                   help="timed runs per round (default 20, at most 100000)")
    p.add_argument("--warmup", type=int_at_least(0, 100_000), default=_DEFAULTS["warmup"],
                   help="untimed runs first (default 10, at most 100000)")
    p.add_argument("--reference-every", type=nonneg_int, default=_DEFAULTS["reference_every"], metavar="N",
                   help="dataset: time one fixed reference network at the start, after every N models and at the "
                        "end, into reference.jsonl, to see and correct the host's speed drifting during the run "
                        f"(default {_DEFAULTS['reference_every']}; 0: off)")
    p.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime",
                   help="dataset: what runs the models (default onnxruntime; openvino reads the ONNX file; torch "
                        "runs the PyTorch module in eager mode)")
    p.add_argument("--budget-s", type=positive_float, metavar="S",
                   help="dataset: timed seconds per model at most (fewer runs per round for slow models; default: "
                        "exactly --rounds x --runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_profile)
    _add_device_parser(subparsers)
    return p


def cmd_device(args) -> int:
    from .probe import MAX_PROBE_S, load_profile, probe, save_profile

    if args.action == "show":
        if not args.profile:
            raise NNFormerError("device show needs a profile: nnformer device show DEV.json")
        prof = load_profile(args.profile)
        print(f"{prof.name}: {len(prof.references)} reference networks, probed in {prof.probe_s:.1f} s on "
              f"{prof.created}")
        for r in prof.references:
            print(f"  {r['latency_ms']:10.3f} ms  {r['id']}")
        return 0
    if args.profile:
        raise NNFormerError("device probe writes --out; it takes no profile argument")
    if not args.out:
        raise NNFormerError("device probe needs --out DEV.json (the device profile to write)")
    out = Path(args.out)
    if out.is_dir():
        raise NNFormerError(f"--out {out} is a directory; give a file name such as {out / 'device.json'}")
    if out.exists():
        try:
            load_profile(out)
        except NNFormerError:
            raise NNFormerError(f"--out {out} exists and is not a device profile; choose another name") from None
    if not out.parent.is_dir():
        raise NNFormerError(f"--out {out}: folder {out.parent} does not exist")
    prof = probe(args.runtime, args.threads, args.batch, progress=not args.quiet)
    save_profile(prof, out)
    over = f" (over the {MAX_PROBE_S:.0f} s it should take: a busy machine?)" if prof.probe_s > MAX_PROBE_S else ""
    print(f"nnformer device: {prof.name}: {len(prof.references)} reference networks timed in {prof.probe_s:.1f} s"
          f"{over} -> {out}; use it with: nnformer predict model.onnx --device {out}")
    return 0


def _add_device_parser(subparsers) -> None:
    d = subparsers.add_parser(
        "device", help="probe this machine and runtime (about a minute) for latency predictions made for it",
        description="probe: time a fixed set of 16 small reference networks with the given runtime, threads and "
                    "batch, and write a device profile (JSON); `nnformer predict model.onnx --device DEV.json` "
                    "then predicts for this machine. show: print a profile.")
    d.add_argument("action", choices=["probe", "show"])
    d.add_argument("profile", nargs="?", help="show: the device profile to print")
    d.add_argument("--out", metavar="DEV.json", help="probe: the device profile to write")
    d.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime",
                   help="what runs the models (default onnxruntime; openvino needs pip install 'nnformer[zoo]')")
    d.add_argument("--threads", type=thread_count, default=1, help="intra-op threads (default 1)")
    d.add_argument("--batch", type=batch_size, default=1, help="batch size (default 1)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_device)
