"""The ``nnformer`` command: one verb per job.

Bad input (a malformed arch string, a missing or altered data file, an unreadable checkpoint) ends with a one-line
``nnformer: error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from . import __version__
from .argtypes import (OneLineParser, batch_size, int_at_least, nonneg_int, positive_float, positive_int, seed_int,
                       thread_count)
from .errors import DataError, NNFormerError
from .io import check_output_dir, check_output_file
from .protocols import family_minimum
from .recipes import DEFAULT_RECIPE, RECIPES
from .shipped import DEFAULT_LATENCY


def _add_correct_drift(p: argparse.ArgumentParser) -> None:
    p.add_argument("--correct-drift", action="store_true",
                   help="dataset directory: divide each label by the host's speed when it was measured (the "
                        "reference network's timings of `nnformer profile --reference-every N`), putting labels "
                        "measured at different times on one scale")


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="directory of the benchmark files (default: $NNFORMER_DATA, then the user "
                                      "cache); missing files are downloaded into it from their pinned URLs "
                                      "(`nnformer data download` makes a directory that does not exist; other verbs "
                                      "refuse one, a mistyped path)")


def _init_distributed(args) -> int:
    """Join the process group when launched by ``torchrun`` (gloo on CPU, nccl on GPU); returns the rank."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return 0
    cuda = (args.device or "cpu").startswith("cuda")
    if cuda:
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(args.device)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank()


def cmd_train(args) -> int:
    import torch

    from .machine import code_version
    from .recipes import parse_settings
    from .training_sets import train_run

    code_version()  # asked now, recorded at the end: the code this process imported
    torch.set_num_threads(args.threads) if args.threads else None
    if args.device is not None:
        _check_device(args.device)  # before torchrun's process group picks a GPU
    rank = _init_distributed(args)
    settings = parse_settings(args.set) | ({} if args.device is None else {"device": args.device})  # recipe overrides
    run = train_run(args.out, task=args.task, data=args.data, recipe=args.recipe, settings=settings,
                    n_train=args.n_train, n_val=args.n_val, split=args.split, label=args.label,
                    data_dir=args.data_dir, correct_drift=args.correct_drift, progress=not args.quiet,
                    command=args.command_line, rank=rank)
    if run is not None:  # rank 0 reports; the other ranks trained alike
        print("\n".join(run.report()))
    return 0


def _check_device(device: str | None) -> str:
    """``--device`` checked in one line: a name torch knows, and a GPU present when it names one."""
    import torch

    device = device or "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise NNFormerError(f"--device must be cpu, cuda or cuda:N, got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise NNFormerError(f"--device {device} asked for, but no CUDA GPU is available")
    return device


def _load_predictor(args):
    """The predictor of ``--checkpoint`` (a saved one, or a shipped one's NAME[@VERSION]), on ``--device``."""
    from .shipped import load_any

    device = _check_device(args.device)  # before reading the checkpoint
    return load_any(args.checkpoint).to(device)


def cmd_evaluate(args) -> int:
    from .data.benchmarks import nb201_table
    from .plots import scatter_pred_true
    from .training_sets import nb201_metrics

    if args.plot:
        check_output_file(args.plot, "--plot")
    p = _load_predictor(args)
    if p.task == "latency":
        return _evaluate_latency(args, p)
    if args.data:
        raise NNFormerError(f"{args.checkpoint} is an accuracy predictor: it is evaluated on NB201, without --data")
    table = nb201_table(args.data_dir)
    pred = p.predict(table.graphs, progress=not args.quiet)
    metrics = nb201_metrics(pred, table)
    if args.plot:
        scatter_pred_true(pred, table.label("test"), args.plot, title=f"tau {metrics['tau_test']:.4f}",
                          xlabel="true CIFAR-10 test accuracy (%)", ylabel="predicted accuracy (%)")
    print(json.dumps({"checkpoint": str(args.checkpoint), "n": len(table), **metrics}, indent=2))
    return 0


def _evaluate_latency(args, p) -> int:
    """Errors of a latency predictor on a dataset: every model of a directory (and per family), or every HELP
    cell of a device."""
    from .latency.sources import load_latency_data
    from .metrics import report
    from .plots import scatter_pred_true

    if not args.data:
        raise NNFormerError(f"{args.checkpoint} is a latency predictor: --data help-nb201:DEVICE or a dataset "
                            f"directory says what to evaluate it on")
    data = load_latency_data(args.data, args.data_dir, correct_drift=args.correct_drift)
    graphs, ms, families = data.graphs, data.ms, data.families
    from .protocols import MIN_TEST

    if len(ms) < MIN_TEST:
        raise DataError(f"{args.data} holds {len(ms)} measured model{'s' if len(ms) != 1 else ''}; scoring a "
                        f"predictor ranks at least {MIN_TEST}")
    try:
        pred = p.predict(graphs, progress=not args.quiet)
    except DataError as e:
        raise DataError(f"{args.checkpoint} cannot read these graphs: {e}") from None
    metrics = report(pred, ms, groups=families)
    if args.plot:
        scatter_pred_true(pred, ms, args.plot, title=f"MAPE {metrics['mape']:.2f}% over {len(ms):,}",
                          xlabel="measured latency (ms)", ylabel="predicted latency (ms)")
    print(json.dumps({"checkpoint": str(args.checkpoint), "data": args.data, **metrics}, indent=2))
    return 0


def _predict_models(args, converted: list, names: list[str]) -> int:
    """`nnformer predict model.onnx ...` / `--torch`: milliseconds with an interval, and what the predictor knows of
    each model's operators (every model is converted before the predictor is read)."""
    from .latency.predict import format_results, predict_models

    if args.checkpoint and args.predictor:
        raise NNFormerError("give --predictor or --checkpoint, not both")
    results = predict_models(converted, args.predictor or args.checkpoint, args.device)  # notes on stderr
    if args.json:
        print(json.dumps([{"model": n, **r.to_dict()} for n, r in zip(names, results)], indent=2))
    else:
        print("\n".join(format_results(names, results)))
    return 0


def cmd_predict(args) -> int:
    archs = list(args.archs)
    if args.file:
        try:
            text = Path(args.file).read_bytes().decode("utf-8-sig") if args.file != "-" else sys.stdin.read()
        except OSError as e:
            raise DataError(f"cannot read {args.file}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise DataError(f"cannot read {args.file}: not UTF-8 text (byte {e.object[e.start]:#04x}"
                            + (f" at offset {e.start}" if args.file != "-" else "")
                            + "); it should hold one arch string or ONNX file a line") from None
        archs += [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if any(not a.strip() for a in archs):
        raise NNFormerError("an empty architecture was given: pass NB201 arch strings like "
                            "'|nor_conv_3x3~0|+|none~0|none~1|+|...|' or ONNX files")
    if args.torch:
        if archs:
            raise NNFormerError("give --torch or models / arch strings, not both")
        from .latency.predict import to_graph
        from .latency.torch_model import load_torch_model

        model, dims = load_torch_model(args.torch, args.input_shape)
        return _predict_models(args, [to_graph(model, dims)], [args.torch])
    if not archs:
        raise NNFormerError("no architectures given: pass arch strings, ONNX files, --torch or --file")
    models = [a for a in archs if not a.startswith("|")]
    if args.device and not models:
        raise NNFormerError("--device applies to latency predictions of ONNX files or --torch models")
    if models:
        if len(models) < len(archs):
            raise NNFormerError("give either NB201 arch strings or ONNX files, not both")
        from .latency.predict import to_graph

        return _predict_models(args, [to_graph(path, batch=args.batch) for path in models], models)
    from .shipped import predict_nb201

    pred, unit = predict_nb201(args.checkpoint or args.predictor, archs)  # every string checked before the model
    for a, v in zip(archs, pred):
        print(f"{v:.4f}{unit}\t{a}")
    return 0


def cmd_predictors(args) -> int:
    from . import shipped

    rows = shipped.entries()
    if args.json:
        print(json.dumps([e.__dict__ for e in rows], indent=2))
        return 0
    for e in rows:
        print(e.describe())
    if not rows:
        print("no shipped predictors")
    return 0


def cmd_adapt(args) -> int:
    """Fine-tune a latency predictor on measurements of the user's own device (a `nnformer profile` directory)."""
    from .latency.adapt import adapt_profile

    r = adapt_profile(args.profile, args.out, predictor=args.predictor, n=args.n, steps=args.steps, lr=args.lr,
                      seed=args.seed, name=args.name, version=args.version, command=args.command_line)
    info = r.card
    interval = (f"interval recalibrated on {info['n_calibration']} held-back measurements" if info["n_calibration"]
                else "interval kept from the base predictor (fewer than 30 measurements to recalibrate it)")
    print(f"nnformer adapt: {r.base} -> {info['name']}@{info['version']} on {info['n_adapt']} measurements "
          f"(latencies x{info['factor']:.3f}, then {info['steps']} fine-tuning steps); MAPE on the {r.n} "
          f"measurements: {r.mape_before:.2f}% before, "
          f"{r.mape_after:.2f}% after (they were trained on: not a test error); {interval}; wrote {r.out}")
    return 0


def cmd_score(args) -> int:
    from .data.benchmarks import nb201_table
    from .scoring import check_scores_file, score_stream
    from .spaces.nb201 import arch_to_graph

    check_output_file(args.out)
    check_scores_file(args.out)  # an earlier scores CSV is replaced; any other file is refused
    p = _load_predictor(args)
    if args.space == "nb201":
        table = nb201_table(args.data_dir)
        items = enumerate(table.arch_strs.tolist())
        out = score_stream(p, items, arch_to_graph, args.out, total=len(table), chunk=args.chunk,
                           batch_size=args.batch_size, progress=not args.quiet)
    else:
        from .data.nb101 import load_nb101
        from .data.benchmarks import fetch_space
        from .spaces.nb101 import spec_to_graph

        fetch_space("nb101", args.data_dir)
        table = load_nb101(args.data_dir)  # the official file when present, else the 2,500-cell subset
        print(f"nnformer score: NAS-Bench-101 source {table.source!r}, {len(table):,} cells", file=sys.stderr)
        items = ((i, str(table.hashes[i])) for i in range(len(table)))  # key = file order, arch = module hash
        out = score_stream(p, items, lambda h: spec_to_graph(*table.spec(table.index_of(h))), args.out,
                           total=len(table),
                           chunk=args.chunk, batch_size=args.batch_size, progress=not args.quiet)
    print(f"wrote {out}")
    return 0


def cmd_search(args) -> int:
    """One search: history (resumable) and result under --out."""
    from .data.benchmarks import fetch_space
    from .search import (SearchConfig, latency_constrained_space, load_search_space, search_settings,
                         search_to_directory)

    cfg = SearchConfig(method=args.method, queries=args.queries, seed=args.seed, init=args.init,
                       per_round=args.per_round, acquisition=args.acquisition,
                       ensemble=args.ensemble)  # bad values: one line, before data
    settings = search_settings(args.set)
    if (args.max_latency is None) != (args.latency_device is None):
        raise NNFormerError("--max-latency and --latency-device go together (a budget in ms on a HELP device)")
    for flag, value in (("--latency-predictor", args.latency_predictor), ("--latency-bound", args.latency_bound)):
        if value and args.max_latency is None:
            raise NNFormerError(f"{flag} needs --max-latency and --latency-device")
    out = check_output_dir(args.out)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    fetch_space(args.space, args.data_dir)
    space = load_search_space(args.space, args.data_dir, args.dataset)
    if args.max_latency is not None:
        space = latency_constrained_space(space, args.latency_device, args.max_latency, args.latency_predictor,
                                          args.data_dir, bound=args.latency_bound or "point")
    names = None
    if args.space == "nb201":
        from .data.nb201 import load_nb201

        names = load_nb201(args.data_dir).arch_strs
    result = search_to_directory(space, cfg, out, settings=settings, names=names, progress=not args.quiet,
                                 command=args.command_line)
    c = result.get("constraint")
    if c:
        print(f"latency on {c['device']}: budget {c['budget_ms']:g} ms, {c['cells_allowed']:,} cells predicted within "
              f"it ({100 * c['allowed_truly_feasible']:.1f}% of them truly are); returned cell measured at "
              f"{c['returned_latency_ms']:.3g} ms ({'within' if c['holds'] else 'OVER'} the budget); best cell truly "
              f"within it: test {c['best_feasible_test']:.2f} (gap {c['gap_to_best_feasible']:+.2f})")
    print(f"nnformer search: {cfg.method}, {cfg.queries} queries on {space.name}, seed {cfg.seed}: returned cell "
          f"{result['returned_index']} (validation {result['returned_val']:.2f}, test {result['returned_test']:.2f}; "
          f"optimum {result['optimum_test']:.2f}" + (f", evaluated at query {result['queries_to_optimum']})"
                                                     if result["queries_to_optimum"] else ", not evaluated)")
          + f"; wrote {out / 'history.jsonl'}, {out / 'result.json'}")
    return 0


def _add_latency_bound(parser) -> None:
    parser.add_argument("--latency-bound", choices=["point", "upper"],
                        help="with --max-latency: compare the budget with the point prediction (default) or with the "
                             "upper end of the predictor's calibrated 90%% interval (the budget more often truly "
                             "met, fewer cells)")


def cmd_reproduce(args) -> int:
    from .harness.reproduce import reproduce

    return reproduce(args)


def cmd_data(args) -> int:
    from .data.registry import RAW_FILES, download, resolve_data_dir, verified_path

    root = resolve_data_dir(args.data_dir)
    if args.action == "path":
        print(root)
    elif args.action == "download":
        check_output_dir(root, "--data-dir")
        for path in download(args.files or None, root):
            print(f"ok  {path}")
    else:
        bad = 0
        for name in args.files or list(RAW_FILES):
            try:
                print(f"ok       {verified_path(name, root)}")
            except DataError as e:
                bad += 1
                print(f"FAILED   {e}")
        return 2 if bad else 0
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nnformer", description="Predict the accuracy and latency of neural "
                           "architectures with NN-Former (sibling-aware graph transformer, CVPR 2025).")
    parser.add_argument("--version", action="version", version=f"nnformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a predictor on NAS-Bench-201 and report Kendall's tau on all cells",
                       description="Train NN-Former on the first N NAS-Bench-201 cells (TNASP protocol: the next "
                                   "1,024 validate, tau over all 15,625), save the predictor, metrics and a "
                                   "predicted-vs-true scatter plot. Rerunning with the same --out resumes.")
    t.add_argument("--space", choices=["nb201"], default="nb201")
    t.add_argument("--task", choices=["accuracy", "latency"], default="accuracy",
                   help="accuracy (default): NB201 accuracy, TNASP split; latency: HELP's latency of the NB201 cells "
                        "on one device (--data help-nb201:DEVICE), N random cells train, max(20, N/10) others "
                        "calibrate the 90%% prediction interval and the rest test")
    t.add_argument("--data", metavar="help-nb201:DEVICE|DIR",
                   help="latency data: help-nb201:DEVICE, a device of `nnformer data verify` (e.g. help-nb201:fpga), "
                        "or a dataset directory written by `nnformer profile` (per family, the first 80%% of the "
                        "models train, the next 10%% calibrate the prediction interval and the last 10%% test; a "
                        f"family needs at least {sum(family_minimum(2, 0.1))} models, "
                        f"{sum(family_minimum(1, 0.1))} when it is the only one)")
    t.add_argument("--n-train", type=positive_int, default=781, help="training cells (default 781 = 5%%)")
    t.add_argument("--n-val", type=nonneg_int, default=1024, help="validation cells (default 1024)")
    t.add_argument("--split", choices=["tnasp", "random"], default="tnasp")
    t.add_argument("--label", default="val", help="training label (default: cifar10-valid validation acc., 200 ep)")
    t.add_argument("--recipe", choices=sorted(RECIPES),
                   help=f"network size + schedule preset (default {DEFAULT_RECIPE}; networks for a dataset directory; "
                        f"released: the authors')")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override one setting of the recipe, repeatable: a field of the network config (n_layers, "
                        "dim, n_heads, mlp_ratio, dropout, mask_mode, ffn_mode, ...), of the training config (lr, "
                        "batch_size, seed, w_rank, w_cons, amp, ...) or steps / epochs / evals")
    t.add_argument("--out", required=True, help="output directory (checkpoint, predictor.pt, metrics.json, plot)")
    t.add_argument("--device", help="cpu (default) or cuda / cuda:N")
    t.add_argument("--threads", type=thread_count, help="torch CPU threads")
    _add_correct_drift(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_dir(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="Kendall's tau of a saved predictor over all NAS-Bench-201 cells, or a "
                                        "latency predictor's errors on a dataset")
    e.add_argument("--checkpoint", required=True,
                   help="a saved predictor (.pt or directory) or a shipped one's NAME[@VERSION]")
    e.add_argument("--data", metavar="help-nb201:DEVICE|DIR", help="latency predictors: the measurements to "
                                                                   "compare with (MAPE, Acc(10%%), tau, Spearman)")
    e.add_argument("--space", choices=["nb201"], default="nb201")
    e.add_argument("--plot", help="also write a predicted-vs-true scatter plot (PNG) here")
    e.add_argument("--device", help="where the network runs: cpu (default), cuda or cuda:N")
    _add_correct_drift(e)
    e.add_argument("--quiet", action="store_true")
    _add_data_dir(e)
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict NAS-Bench-201 arch strings, or the latency of ONNX models, with a "
                                       "saved predictor",
                       description="Prints one line per architecture: the prediction with its unit (%% for "
                                   "accuracy, ms for latency)<TAB>arch string; for ONNX files and a latency "
                                   "predictor: milliseconds<TAB>file, and a note naming operators the predictor "
                                   "does not know.")
    p.add_argument("archs", nargs="*", help="arch strings like '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|', "
                                            "or ONNX files (weight-stripped ones too)")
    p.add_argument("--batch", type=batch_size, help="ONNX: batch size for a symbolic batch dimension (default 1)")
    p.add_argument("--file", help="file with one arch string per line ('-' = stdin)")
    p.add_argument("--checkpoint", help="a saved predictor: a .pt file or a predictor directory")
    p.add_argument("--predictor", metavar="NAME[@VERSION]|DIR",
                   help="a shipped predictor (`nnformer predictors`) or a predictor directory (`nnformer adapt`); "
                        f"ONNX models default to the shipped {DEFAULT_LATENCY}")
    p.add_argument("--torch", metavar="MODULE:CALLABLE", help="a PyTorch model instead of files: the callable (or "
                   "module attribute) returns a torch.nn.Module; exported to ONNX in memory with --input-shape. "
                   "MODULE is imported from the working directory as Python would, or is a file: "
                   "path/to/models.py:resnet")
    p.add_argument("--input-shape", metavar="N,C,H,W", help="example input shape for --torch (e.g. 1,3,224,224)")
    p.add_argument("--json", action="store_true", help="ONNX / --torch: print the predictions as JSON")
    p.add_argument("--device", metavar="DEV.json", help="ONNX / --torch: predict for the machine and runtime of a "
                   "device profile (`nnformer device probe --out DEV.json`) instead of the predictor's own")
    p.set_defaults(func=cmd_predict)

    ps = sub.add_parser("predictors", help="list the shipped predictors",
                        description="The predictors shipped inside the package (name@version, what and where they "
                                    "were measured, held-out metrics); `nnformer predict --predictor NAME` uses one.")
    ps.add_argument("--json", action="store_true", help="print the registry entries as JSON")
    ps.set_defaults(func=cmd_predictors)

    a = sub.add_parser("adapt", help="fine-tune a latency predictor on your own device's measurements",
                       description="Adapts a shipped (or saved) latency predictor to the models of a `nnformer "
                                   "profile` directory measured on your machine (one scale factor, the median ratio "
                                   "measured / predicted, then fine-tuning), and saves the result as a new "
                                   "predictor directory for `nnformer predict --predictor DIR`. With 30 or more "
                                   "measurements, 20%% of them recalibrate the prediction interval.")
    a.add_argument("--predictor", default=DEFAULT_LATENCY, metavar="NAME[@VERSION]|DIR",
                   help=f"the predictor to start from (default: the shipped {DEFAULT_LATENCY})")
    a.add_argument("--profile", required=True, metavar="DIR", help="measurements: a `nnformer profile --out` directory")
    a.add_argument("--out", required=True, metavar="DIR", help="the new predictor directory")
    a.add_argument("--n", type=positive_int, help="use N measurements of the directory, drawn at random (default: all)")
    a.add_argument("--steps", type=int_at_least(0, 1_000_000), default=100,
                   help="fine-tuning steps after the scale correction (default 100; 0: the correction alone)")
    a.add_argument("--lr", type=positive_float, help="learning rate (default: the predictor's training rate)")
    a.add_argument("--seed", type=seed_int, default=0)
    a.add_argument("--name", help="the new predictor's name (default: the --out folder's name)")
    a.add_argument("--version", default="1", help="the new predictor's version (default 1)")
    a.set_defaults(func=cmd_adapt)

    s = sub.add_parser("score", help="score every architecture of a search space with a saved predictor",
                       description="Streams the space in chunks (bounded memory) and writes key,arch,prediction "
                                   "rows to a CSV (key = the benchmark index).")
    s.add_argument("--space", choices=["nb201", "nb101"], default="nb201")
    s.add_argument("--checkpoint", required=True,
                   help="a saved predictor (.pt or directory) or a shipped one's NAME[@VERSION]")
    s.add_argument("--out", required=True, help="output CSV (a new file, or an earlier scores CSV to replace)")
    s.add_argument("--chunk", type=positive_int, default=8192, help="architectures converted and scored at a time")
    s.add_argument("--batch-size", type=positive_int, default=2048)
    s.add_argument("--device", help="where the network runs: cpu (default), cuda or cuda:N")
    s.add_argument("--quiet", action="store_true")
    _add_data_dir(s)
    s.set_defaults(func=cmd_score)

    r = sub.add_parser("reproduce", help="reproduce the paper's tables side by side with ablations and baselines",
                       description="Runs the TNASP protocol for every method x N x seed, storing each result "
                                   "as it finishes (a rerun skips what is done), then writes Markdown/CSV/JSON "
                                   "tables and a tau-vs-N plot.")
    r.add_argument("task", choices=["accuracy", "latency", "fewshot", "networks", "devices", "search"],
                   help="accuracy: the TNASP tables on NB201/NB101; latency: HELP's NB201 devices, N random cells "
                        "train, the rest test (MAPE, Acc(10%%), Acc(5%%), tau, Spearman); fewshot: HELP's "
                        "cross-device protocol (meta-train on other devices, N=10,20,100 samples of the new one); "
                        "networks: NNLQ's in-domain and out-of-domain protocols on a latency dataset directory "
                        "(--data); devices: leave one device out (--data DIR1,DIR2,...: latency datasets of several "
                        "device settings, each with its probe.json); search: predictor-guided search against random search and regularised evolution "
                        "(--datasets, --queries, --seeds)")
    r.add_argument("--datasets", help="search on nb201: comma-separated cifar10,cifar100,imagenet16 (default all)")
    r.add_argument("--queries", type=positive_int, default=150, help="search: queries per search (default 150)")
    r.add_argument("--data", metavar="DIR", help="networks: the latency dataset directory (nnformer profile --out); "
                                                 "devices: several, comma-separated, each with DIR/probe.json")
    r.add_argument("--protocols", help="networks: in-domain,ood (default both)")
    _add_correct_drift(r)
    r.add_argument("--families", help="networks, ood: the held-out families to run (default: every family)")
    r.add_argument("--space", choices=["nb201", "nb101", "fbnet"], default="nb201",
                   help="accuracy: nb201 or nb101; latency, fewshot: nb201 or fbnet (HELP's measurements)")
    r.add_argument("--dataset", choices=["cifar10", "cifar100", "imagenet16"], default="cifar10",
                   help="NB201 labels to train and test on")
    r.add_argument("--methods", help="comma-separated subset of the methods, or 'all' (default: all; with --quick, "
                                     "the methods the paper's claims need: NN-Former with both masks, the plain "
                                     "transformer, GCN, MLP, params, FLOPs; latency: nnformer,gcn,flops-linear (also "
                                     "nnformer-static, its ablations transformer-static, global-bgiffn-static, "
                                     "asma-ffn-static, transformer, gcn-static, layer-lut); fewshot: all of "
                                     "nnformer-hw, nnformer-hw-ft, gcn-hw, gcn-hw-ft, nnformer-static, flops-linear, "
                                     "flops)")
    r.add_argument("--ns", help="comma-separated training sizes (default: the paper's; latency: 100,1000; fewshot: "
                                "10,20,100 target samples)")
    r.add_argument("--devices", help="latency, fewshot: comma-separated HELP devices (default: titan_rtx_256,"
                                     "gold_6226,fpga,"
                                     "pixel2, HELP's test devices that the data holds); devices: the devices to "
                                     "hold out, by dataset folder name (default: each)")
    r.add_argument("--seeds", type=int_at_least(1, 1000), default=3, help="seeds per cell (default 3)")
    r.add_argument("--quick", action="store_true", help="one seed, two N, no ablations (about 6 min on 2 cores "
                                                        "with --jobs 2)")
    r.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE)
    r.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override one setting of the recipe for every trained method (e.g. steps=6000), "
                        "repeatable; stored and written apart (<out>/<space>/<recipe>-<key><value>/)")
    r.add_argument("--out", default="nnformer-results",
                   help="results directory: <out>/<space>/<recipe>/ holds runs.jsonl and the tables "
                        "(default: ./nnformer-results)")
    r.add_argument("--threads", type=thread_count, help="torch threads per run")
    r.add_argument("--jobs", type=thread_count, default=1, help="parallel single-threaded runs (default 1)")
    r.add_argument("--max-latency", metavar="DEVICE:MS[,...]",
                   help="search on nb201: every search under each of these latency budgets on HELP devices (latency "
                        "predicted by the shipped help-nb201-DEVICE), e.g. fpga:3,pixel2:14")
    _add_latency_bound(r)
    r.add_argument("--from-cache", action="store_true",
                   help="train nothing: write the tables from the runs already stored (a sweep in progress)")
    r.add_argument("--quiet", action="store_true")
    _add_data_dir(r)
    r.set_defaults(func=cmd_reproduce)

    se = sub.add_parser("search", help="search NAS-Bench-201 / NB101 with a predictor (or a baseline) for the best "
                                       "cell in few queries",
                        description="Queries a few random cells, trains the predictor on the cells queried so far, "
                                    "scores every cell of the space, queries the best-scored ones and repeats. A query "
                                    "returns the cell's validation accuracy from the table; the result is the test "
                                    "accuracy of the queried cell with the best validation accuracy. The history is "
                                    "saved after every round: rerunning the same command resumes.")
    se.add_argument("--space", choices=["nb201", "nb101"], default="nb201")
    se.add_argument("--dataset", choices=["cifar10", "cifar100", "imagenet16"], default="cifar10",
                    help="NB201 labels (default cifar10)")
    se.add_argument("--method", default="nnformer", help="nnformer (default), gcn, random or evolution")
    se.add_argument("--queries", type=positive_int, default=150, help="query budget (default 150)")
    se.add_argument("--seed", type=seed_int, default=0)
    se.add_argument("--init", type=positive_int, default=10, help="random cells queried first (default 10)")
    se.add_argument("--per-round", type=positive_int, default=10, help="cells queried per round (default 10)")
    se.add_argument("--acquisition", choices=["space", "mutation"], default="space",
                    help="predictor methods: score every cell of the space (default) or only the cells within two "
                         "mutations of the 10 best queried")
    se.add_argument("--ensemble", type=positive_int, default=1, metavar="K",
                    help="predictor methods: train K predictors a round and query the cells of the best draws from "
                         "their mean and spread (Thompson sampling; K times the training; default 1: one predictor)")
    se.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                    help="override a setting of the predictor's recipe, repeatable (default 300 training steps a "
                         "round: steps=1500 for the recipe's)")
    se.add_argument("--max-latency", type=positive_float, metavar="MS",
                    help="only cells whose predicted latency on --latency-device is at most MS milliseconds")
    se.add_argument("--latency-device", metavar="DEVICE",
                    help="the HELP device of --max-latency (its measurements give the returned cell's true latency)")
    se.add_argument("--latency-predictor", metavar="NAME|DIR",
                    help="latency predictor of the budget: a shipped name, a predictor directory or a .pt "
                         "checkpoint (default: the shipped help-nb201-DEVICE, shipped for fpga and pixel2)")
    _add_latency_bound(se)
    se.add_argument("--out", required=True, help="directory for history.jsonl and result.json")
    se.add_argument("--threads", type=thread_count, help="torch threads")
    se.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_dir(se)
    se.set_defaults(func=cmd_search)

    d = sub.add_parser("data", help="download, verify or locate the benchmark files")
    d.add_argument("action", choices=["download", "verify", "path"])
    d.add_argument("files", nargs="*", help="registered file names (default: all)")
    _add_data_dir(d)
    d.set_defaults(func=cmd_data)

    from .latency.cli import add_parser as add_profile_parser  # ONNX Runtime is imported only when it runs

    add_profile_parser(sub)
    return parser


@contextlib.contextmanager
def _stop_on_sigterm():
    """SIGTERM raises ``KeyboardInterrupt`` in the main thread while the block runs, so every long command stops
    on it as on Ctrl-C (finished work stored, exit 130)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (already printed): its exit code
        return e.code if isinstance(e.code, int) else 2
    args.command_line = "nnformer " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        with _stop_on_sigterm():  # SIGTERM stops a command as Ctrl-C does
            if getattr(args, "correct_drift", False) and not (args.data and os.path.isdir(args.data)):
                raise NNFormerError(f"--correct-drift needs a latency dataset directory as --data (`nnformer "
                                    f"profile --out DIR`), got {args.data!r}")
            return args.func(args)
    except NNFormerError as e:
        print(f"nnformer: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as e:
        done = f": {e}" if str(e) else ""  # a sweep says how much it stored
        print(f"nnformer: interrupted{done}; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
