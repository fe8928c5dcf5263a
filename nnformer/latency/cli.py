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

from ..argtypes import batch_size, int_at_least, nonneg_int, seed_int, thread_count
from ..errors import NNFormerError
from ..io import check_output_dir

from .families import FAMILIES
from .profiler import DEFAULTS, REFERENCE_EVERY

# the profiler's own defaults (neither module loads ONNX or ONNX Runtime before a profile runs)
_DEFAULTS = {**DEFAULTS, "reference_every": REFERENCE_EVERY}
FAMILY_NAMES = tuple(FAMILIES)


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
        res = profiler.profile_onnx(args.model, threads=args.threads, batch=args.batch, warmup=args.warmup,
                                    runs=args.runs, rounds=args.rounds)
        print(json.dumps(res, indent=2))
        return 0
    families = args.families.split(",") if args.families else list(FAMILY_NAMES)
    counts = profiler.profile_dataset(families, args.per_family, args.out, seed=args.seed, threads=args.threads,
                                      batch=args.batch or _DEFAULTS["batch"], rounds=args.rounds, runs=args.runs,
                                      warmup=args.warmup, progress=not args.quiet,
                                      reference_every=args.reference_every)
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
    p.add_argument("--families", help=f"comma-separated families (default: all): {','.join(FAMILY_NAMES)}")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_profile)
    return p
