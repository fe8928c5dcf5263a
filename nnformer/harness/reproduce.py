"""`nnformer reproduce`: what each of its tasks runs, from the parsed command line to the written tables.

``accuracy`` (the paper's NB201 / NB101 tables with ablations and baselines), ``latency`` (HELP's devices, one
predictor per device and N), ``fewshot`` (HELP's protocol on a new device), ``networks`` (NNLQ's protocols on a
dataset of whole networks) and ``search`` (the search comparison over seeds): each checks its arguments before any
data is read, runs its sweep on the engine (:mod:`.engine`: stored, resumable, stoppable) and writes its tables.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.benchmarks import fetch_space
from ..errors import NNFormerError
from ..io import check_output_dir
from ..recipes import DEFAULT_RECIPE


def _latency_budgets(text: str) -> list[tuple[str, float]]:
    """``fpga:3,pixel2:14`` -> ``[("fpga", 3.0), ("pixel2", 14.0)]``; the devices are checked against HELP's."""
    from ..data.help import help_devices

    out = []
    for item in text.split(","):
        device, _, ms = item.partition(":")
        try:
            budget = float(ms)
        except ValueError:
            budget = float("nan")
        if not 0 < budget < float("inf"):
            raise NNFormerError(f"--max-latency: expected DEVICE:MS with a positive MS, got {item!r}")
        if device not in help_devices("nb201"):
            raise NNFormerError(f"--max-latency: unknown HELP device {device!r}; devices: "
                                f"{', '.join(help_devices('nb201'))}")
        out.append((device, budget))
    return out


def _reproduce_search(args) -> int:
    from ..search import METHODS, search_settings
    from . import search_sweep

    methods = _method_list(args, ",".join(METHODS), METHODS)
    settings = search_settings(args.set)
    datasets = (args.datasets or "cifar10,cifar100,imagenet16").split(",") if args.space == "nb201" else ["subset"]
    bad = [d for d in datasets if args.space == "nb201" and d not in ("cifar10", "cifar100", "imagenet16")]
    if bad:
        raise NNFormerError(f"unknown NB201 dataset {bad[0]!r}; datasets: cifar10, cifar100, imagenet16")
    if args.space not in ("nb201", "nb101"):
        raise NNFormerError("search runs on --space nb201 or nb101")
    budgets = _latency_budgets(args.max_latency) if args.max_latency else None
    if budgets and args.space != "nb201":
        raise NNFormerError("--max-latency needs --space nb201 (HELP measured NAS-Bench-201's cells)")
    if args.latency_bound and not budgets:
        raise NNFormerError("--latency-bound needs --max-latency")
    bound = args.latency_bound or "point"
    out = Path(args.out)
    if not args.from_cache:
        search_sweep.sweep(args.space, datasets, methods, list(range(args.seeds)), args.queries, out, settings,
                           args.data_dir, jobs=args.jobs, threads=args.threads, progress=not args.quiet,
                           budgets=budgets, bound=bound)
    # the tables hold every method and dataset stored (a sweep of one does not drop the others' rows)
    if args.space == "nb201" and not budgets:
        datasets = [d for d in ("cifar10", "cifar100", "imagenet16")
                    if d in datasets or (out / "search-nb201" / d).is_dir()]
    # complete histories go into one compressed store per table directory (what the tables are written from)
    for d in datasets:
        for b in [(dev, ms, bound) for dev, ms in budgets] if budgets else [None]:
            search_sweep.pack(search_sweep.history_path(out, args.space, d, "", 0, b).parent, args.queries)
    if budgets:
        written = search_sweep.write_latency_report(out, args.space, datasets, METHODS, args.queries, budgets,
                                                    args.command_line, args.data_dir, bound=bound)
    else:
        written = search_sweep.write_report(out, args.space, datasets, METHODS, args.queries, args.command_line,
                                            args.data_dir)
    for p in written:
        print(f"wrote {p}")
    return 0


def reproduce(args) -> int:
    from ..recipes import get_recipe, parse_settings, typed_settings
    from . import methods as hm
    from . import report, sweep
    from .benchmark_data import load_space

    check_output_dir(args.out)
    if args.task == "search":
        return _reproduce_search(args)
    settings = typed_settings(parse_settings(args.set))  # typed: `mlp_ratio=2` and `=2.0` are one setting
    get_recipe(args.recipe).with_settings(settings)  # an unknown setting or bad value fails before any data is read
    if args.task == "latency":
        return _reproduce_latency(args, settings)
    if args.task == "fewshot":
        return _reproduce_fewshot(args, settings)
    if args.task == "networks":
        return _reproduce_networks(args, settings)
    if args.task == "devices":
        return _reproduce_devices(args, settings)
    if args.space == "fbnet":
        raise NNFormerError("FBNet has latency measurements only: nnformer reproduce latency|fewshot --space fbnet")
    if args.methods in (None, "all"):
        methods = list(hm.QUICK_METHODS if args.quick and args.methods is None else hm.METHODS)
    else:
        methods = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in methods if m not in hm.METHODS]
    if unknown:
        raise NNFormerError(f"unknown method {unknown[0]!r}; known: {', '.join(hm.METHODS)}")
    fetch_space(args.space, args.data_dir)
    space = load_space(args.space, args.data_dir, args.dataset)
    try:
        ns = tuple(int(n) for n in args.ns.split(",")) if args.ns else space.ns
    except ValueError:
        raise NNFormerError(f"--ns must be comma-separated integers, got {args.ns!r}") from None
    if args.quick:
        ns = (space.ns[1], space.ns[3]) if len(space.ns) > 3 else (space.ns[0], space.ns[-1])
    if any(not 0 < n < len(space.graphs) for n in ns):
        raise NNFormerError(f"every N must be between 1 and {len(space.graphs) - 1}")
    seeds = [0] if args.quick else list(range(args.seeds))
    directory = sweep.run_dir(Path(args.out), space.name, args.recipe, settings)
    records = sweep.sweep(space, methods, ns, seeds, args.recipe, directory, settings, threads=args.threads,
                          progress=not args.quiet, jobs=args.jobs, train=not args.from_cache)
    expected = len(sweep.grid(methods, ns, seeds))
    summary = report.summarise(records, methods, ns)
    threads = sorted({t for row in summary.values() for c in row.values() for t in c["threads"]})
    notes = (f"Runs used {'/'.join(map(str, threads)) or '?'} torch thread(s) each, with {args.jobs} run(s) at a time "
             f"(seconds per run include that sharing of the CPU). "
             f"Protocol: TNASP split (first N cells in index order train, the next {space.n_val} validate), "
             f"Kendall's tau over all {len(space.graphs):,} cells, training cells included. Recipe `{args.recipe}`"
             + (f" with {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}" if settings else "")
             + f", {hm.SWEEP_EVALS} validations a run. "
             f"Each cell of the table comes from the runs stored in `{directory / 'runs.jsonl'}`.")
    run_s = sum(r["seconds"] for r in records)
    notes += (f" The {len(records)} runs took {run_s / 3600:.2f} h of run time in all"
              + (f", {run_s / 3600 / args.jobs:.2f} h of wall time at {args.jobs} at a time." if args.jobs > 1
                 else "."))
    if len(records) < expected:
        notes += (f" **Incomplete: {len(records)} of {expected} runs are stored**; empty cells and k below the seed "
                  f"count are runs not done yet (the same command without --from-cache runs them).")
    answers = report.findings(records, ns, space.name)
    title = f"Accuracy prediction on {space.name}" + (" (--quick)" if args.quick else "")
    for p in report.write_tables(summary, ns, directory / ("quick" if args.quick else "table"), title,
                                 args.command_line, notes, answers, records):
        print(f"wrote {p}")
    return 0


def _method_list(args, default: str, known) -> list[str]:
    """``--methods`` (or ``default``), each checked against ``known``."""
    methods = [m.strip() for m in (args.methods or default).split(",")]
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise NNFormerError(f"unknown method {unknown[0]!r}; known: {', '.join(known)}")
    return methods


def _devices_and_ns(args, default_devices: str, default_ns: tuple, least: int) -> tuple[list[str], tuple]:
    """``--devices`` (HELP devices of ``--space``) and ``--ns`` (sorted; each at least ``least``), checked."""
    from ..data.help import help_devices

    devices = [d.strip() for d in (args.devices or default_devices).split(",")]
    known = help_devices(args.space)
    unknown = [d for d in devices if d not in known]
    if unknown:
        raise NNFormerError(f"unknown HELP device {unknown[0]!r} for {args.space}; devices: {', '.join(known)}")
    size = 15625 if args.space == "nb201" else 5000
    try:
        ns = tuple(sorted(int(n) for n in args.ns.split(","))) if args.ns else default_ns
    except ValueError:
        raise NNFormerError(f"--ns must be comma-separated integers, got {args.ns!r}") from None
    if any(not least <= n < size for n in ns):
        raise NNFormerError(f"every N must be at least {least} and below {size}"
                            + (" (the first N are the reference architectures)" if least > 1 else ""))
    return devices, ns


def _reproduce_latency(args, settings: dict) -> int:
    from . import methods as hm
    from . import report, sweep
    from .benchmark_data import load_space

    methods = _method_list(args, "nnformer,gcn,flops-linear", hm.LATENCY_METHODS)
    if args.space not in ("nb201", "fbnet"):
        raise NNFormerError(f"latency runs on --space nb201 or fbnet (HELP's data), not {args.space}")
    default = ("titan_rtx_256,gold_6226,fpga,pixel2" if args.space == "nb201"
               else "fpga,gold_6226,pixel2,titan_rtx_64")
    devices, ns = _devices_and_ns(args, default, (100, 1000), 1)
    seeds = list(range(args.seeds))
    records = []
    for device in devices:
        space = load_space(f"help-{args.space}", args.data_dir, device)
        directory = sweep.run_dir(Path(args.out), space.name, args.recipe, settings)
        records += sweep.sweep(space, methods, ns, seeds, args.recipe, directory, settings, threads=args.threads,
                               progress=not args.quiet, jobs=args.jobs, train=not args.from_cache)
    expected = len(devices) * len(sweep.grid(methods, ns, seeds, "latency"))
    run_s = sum(r["seconds"] for r in records)
    what = "FBNet" if args.space == "fbnet" else "NAS-Bench-201"
    notes = (f"HELP's {what} latencies (ms) per device. Protocol: per device and seed, N architectures drawn at "
             f"random (seeded) train, every other one tests; no validation set (the last EMA weights are kept). "
             f"Networks learn the standardised log latency with recipe `{args.recipe}`"
             + (f" and {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}" if settings else "")
             + "; `flops-linear` fits log latency to log FLOPs and log parameters on the same N architectures"
             + (" (FBNet's FLOPs and parameters are computed on the macro network of FBNet's paper at 32x32: "
                "nnformer.spaces.fbnet)" if args.space == "fbnet" else "") + ". "
             f"The {len(records)} runs took {run_s / 3600:.2f} h of run time in all, at most {args.jobs} at a time.")
    if len(records) < expected:
        notes += f" **Incomplete: {len(records)} of {expected} runs are stored.**"
    base = sweep.run_dir(Path(args.out), f"help-{args.space}", args.recipe, settings) / "table"
    for p in report.write_latency_tables(records, base, f"Latency prediction on HELP's {what} devices",
                                         args.command_line, notes):
        print(f"wrote {p}")
    return 0


def _reproduce_fewshot(args, settings: dict) -> int:
    from . import fewshot, report

    methods = [m.strip() for m in (args.methods or ",".join(fewshot.FEWSHOT_METHODS)).split(",")]
    fewshot.jobs_for(methods)  # an unknown method fails before any data is read
    if args.space not in ("nb201", "fbnet"):
        raise NNFormerError(f"the few-shot protocol runs on --space nb201 or fbnet (HELP's data), not {args.space}")
    space_name = f"help-{args.space}"
    split = fewshot.HELP_FBNET_DEVICES if args.space == "fbnet" else fewshot.HELP_NB201_DEVICES
    test = split["test"]
    devices = [d.strip() for d in (args.devices or ",".join(test)).split(",")]
    bad = [d for d in devices if d in {*split["train"], *split["val"]}]
    if bad:
        raise NNFormerError(f"{bad[0]} is a meta-training or meta-validation device; few-shot test devices: "
                            f"{', '.join(test)} (or another HELP device outside the meta split)")
    devices, ns = _devices_and_ns(args, ",".join(test), (10, 20, 100), fewshot.N_REFERENCES)
    space = fewshot.load_device_space(space_name, args.data_dir)
    directory = Path(args.out) / f"{space_name}-fewshot" / _tag(args.recipe, settings)
    records = fewshot.sweep(space, methods, ns, list(range(args.seeds)), devices, args.recipe, directory, settings,
                            threads=args.threads, progress=not args.quiet, jobs=args.jobs, train=not args.from_cache)
    meta = sorted({round(r["meta_seconds"]) for r in records if "meta_seconds" in r})
    what = "FBNet" if args.space == "fbnet" else "NAS-Bench-201"
    notes = (f"HELP's cross-device few-shot protocol on {what}. Meta-training devices "
             f"({fewshot.META_PER_DEVICE[space_name]} random architectures each): "
             + ", ".join(space.devices["train"]) + "; meta-validation (200 each, picks the EMA weights): "
             + ", ".join(space.devices["val"]) + f". A device enters as the z-scored log latencies of "
             f"{fewshot.N_REFERENCES} reference cells (drawn per seed; they are the first of the N target samples), "
             f"fed with standardised log FLOPs and params as graph-level features; labels are log latencies z-scored "
             f"by the references. `-ft` methods fine-tune on the N samples ({fewshot.FINETUNE_STEPS} steps). "
             f"Tested on every cell outside the first {max(ns)} target samples of the seed. Recipe `{args.recipe}`"
             + (f" with {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}" if settings else "")
             + (f"; one meta-training took {min(meta)}-{max(meta)} s" if meta else "")
             + f". Runs are stored in `{directory / 'runs.jsonl'}`.\n\n"
             + "Targets (Spearman with 10 samples above HELP's mean over its test devices, HELP "
             + ", ".join(f"{d} {v:.3f}" for d, v in fewshot.HELP_ANCHOR[space_name].items())
             + ", and above FLOPs on each device):\n"
             + "\n".join(line for m in ("nnformer-hw", "nnformer-hw-ft") if m in methods
                         for line in fewshot.targets(records, space_name, m)))
    for p in report.write_latency_tables(records, directory / "table", f"Few-shot latency on a new device "
                                         f"(HELP's {what} protocol)", args.command_line, notes,
                                         metric_plot="spearman_test"):
        print(f"wrote {p}")
    return 0


def _reproduce_networks(args, settings: dict) -> int:
    from . import networks

    methods = _method_list(args, "nnformer,gcn-static,flops-linear", networks.METHODS)
    protocols = [p.strip() for p in (args.protocols or "in-domain,ood").split(",")]
    bad = [p for p in protocols if p not in networks.PROTOCOLS]
    if bad:
        raise NNFormerError(f"unknown protocol {bad[0]!r}; protocols: {', '.join(networks.PROTOCOLS)}")
    if not args.data or not os.path.isdir(args.data):
        raise NNFormerError(f"--data must be a latency dataset directory (`nnformer profile --out DIR`), got "
                            f"{args.data!r}")
    recipe = "networks" if args.recipe == DEFAULT_RECIPE else args.recipe
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from ..latency.sources import load_latency_data

    loaded = load_latency_data(args.data, correct_drift=args.correct_drift)
    data = (loaded.rows, loaded.graphs, loaded.ms, loaded.families)
    families = [f.strip() for f in args.families.split(",")] if args.families else None
    missing = [f for f in families or [] if f not in set(data[3])]
    if missing:
        raise NNFormerError(f"no model of family {missing[0]!r} in {args.data}")
    if not args.from_cache:  # every split is made once before any run: too few models is refused before any work
        from ..protocols import family_split, leave_family_out

        what = f"latency dataset {args.data}"
        if "in-domain" in protocols:
            family_split(data[3], [r["index"] for r in data[0]], what=what)
        for held in (families or list(dict.fromkeys(data[3]))) if "ood" in protocols else []:
            leave_family_out(data[3], held, what=what)
    corrected = "-drift-corrected" if args.correct_drift else ""
    directory = Path(args.out) / f"networks-{Path(args.data).name}{corrected}" / _tag(recipe, settings)
    records = networks.sweep(data, methods, protocols, list(range(args.seeds)), recipe, directory, settings,
                             progress=not args.quiet, train=not args.from_cache, families=families, jobs=args.jobs,
                             path=args.data, correct_drift=args.correct_drift)
    run_s = sum(r["seconds"] for r in records)
    notes = (f"Dataset `{args.data}` ({len(data[2]):,} models, {len(set(data[3]))} families"
             + (", every label divided by the host's speed when it was measured (`--correct-drift`: the reference "
                "network's latency at the label's time, a rolling median of its timings, over their median)"
                if args.correct_drift
                else "") + f"). Recipe `{recipe}`"
             + (f" with {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}" if settings else "")
             + f"; networks learn the standardised log latency from node features (op attributes, shapes, "
             f"per-node FLOPs/params/memory) and static features. The {len(records)} runs took "
             f"{run_s / 3600:.2f} h of run time, at most {args.jobs} at a time. Runs are stored in "
             f"`{directory / 'runs.jsonl'}`. "
             f"The paper's column is NN-Former on NNLQ (a GPU with TensorRT): another dataset and device.")
    for p in networks.write_tables(records, directory / "table", args.command_line, notes, sorted(set(data[3]))):
        print(f"wrote {p}")
    return 0


def _reproduce_devices(args, settings: dict) -> int:
    from . import device_sweep

    methods = _method_list(args, ",".join(device_sweep.METHODS), device_sweep.METHODS)
    paths = [p.strip() for p in (args.data or "").split(",") if p.strip()]
    bad = [p for p in paths if not os.path.isdir(p)]
    if len(paths) < 2 or bad:
        raise NNFormerError(f"--data must be 2 or more latency dataset directories, comma-separated, each with its "
                            f"probe.json" + (f"; not a directory: {bad[0]!r}" if bad else f", got {args.data!r}"))
    recipe = "networks" if args.recipe == DEFAULT_RECIPE else args.recipe
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = device_sweep.load_devices(paths)
    held = [d.strip() for d in args.devices.split(",")] if args.devices else None
    directory = Path(args.out) / f"devices-{Path(paths[0]).name}"
    directory = directory / _tag(recipe, settings)
    records = device_sweep.sweep(data, paths, methods, list(range(args.seeds)), recipe, directory, settings,
                                 held=held, progress=not args.quiet, train=not args.from_cache, jobs=args.jobs)
    run_s = sum(r["seconds"] for r in records)
    devs = ", ".join(f"`{d.name}` ({d.profile.name})" for d in data.devices)
    notes = (f"Devices: {devs}; {len(data.ids):,} models measured on every device, {len(set(data.families))} "
             f"families. Per seed a fifth of the families (drawn with the seed) are test families; of each other "
             f"family the last model calibrates the interval and the rest train. Each held-out device is known only "
             f"by its probe (`DIR/probe.json`, 16 reference networks). Source device of the single-device methods: "
             f"the first of the list that is not held out. Recipe `{recipe}`"
             + (f" with {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}" if settings else "")
             + f". The {len(records)} runs took {run_s / 3600:.2f} h of run time, at most {args.jobs} at a time; "
             f"stored in `{directory / 'runs.jsonl'}`. Method notes: docs/latency.md.")
    for p in device_sweep.write_tables(records, directory / "table", args.command_line, notes):
        print(f"wrote {p}")
    return 0


def _tag(recipe: str, settings: dict) -> str:
    from .sweep import recipe_tag

    return recipe_tag(recipe, settings)
