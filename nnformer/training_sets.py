"""What ``nnformer train`` trains on and how it scores the result, callable from Python as well.

A :class:`TrainingSet` holds the graphs and labels of a benchmark or latency source, the protocol's split (train,
validation, calibration of the interval, test) and how predictions of every graph turn into the metrics the run
reports:

* :func:`nb201_training_set`: NAS-Bench-201 accuracy under TNASP (the first N cells train, the next ``n_val``
  validate, Kendall's tau over all 15,625) or a seeded random draw;
* :func:`latency_training_set`: a latency source (:mod:`nnformer.latency.sources`): HELP's cells on a device (N
  random cells train, ``max(20, N / 10)`` others calibrate the interval, the rest test) or a dataset directory of
  ``nnformer profile`` (per family 80% train, 10% calibrate, 10% test).

:func:`train_run` is the whole of ``nnformer train``: one of these sets, a predictor fitted and calibrated on it,
and the results directory :func:`write_results` writes.

>>> ts = latency_training_set("help-nb201:fpga", n_train=100)          # doctest: +SKIP
>>> p = Predictor(task="latency").fit(ts.pick(ts.split.train), ts.y[ts.split.train])  # doctest: +SKIP
>>> p.calibrate(ts.pick(ts.split.cal), ts.y[ts.split.cal])              # doctest: +SKIP
>>> ts.evaluate(*p.predict_interval(ts.graphs))["mape"]                 # doctest: +SKIP
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import NNFormerError
from .protocols import MIN_TRAIN, MIN_VALIDATION, Split


@dataclass
class TrainingSet:
    what: str  # for messages: "NB201", "HELP NB201 latency on fpga", "latency dataset DIR"
    graphs: list
    y: np.ndarray  # the training label of every graph
    split: Split
    record: dict  # what a run's metrics say of the data and protocol
    evaluate: Callable[..., dict]  # predictions of every graph (and interval bounds, for latency) -> metrics
    summary: Callable[[dict], str]  # metrics -> one line
    plot: dict  # true values, axis labels and the headline metric of a predicted-vs-true plot

    def pick(self, idx) -> list:
        return [self.graphs[i] for i in idx]


def nb201_metrics(pred, table, train_idx=None) -> dict:
    """Kendall's tau, Spearman and top-50 precision of ``pred`` against the test and validation labels of every
    NB201 cell; with ``train_idx``, tau on the cells not trained on as well."""
    from .metrics import kendall_tau, spearman_rho, top_k_precision

    out = {}
    for name in ("test", "val"):
        y = table.label(name)
        out[f"tau_{name}"] = kendall_tau(pred, y)
        out[f"spearman_{name}"] = spearman_rho(pred, y)
        out[f"top50_precision_{name}"] = top_k_precision(pred, y, 50)
    if train_idx is not None:
        rest = np.setdiff1d(np.arange(len(table)), train_idx)
        out["tau_test_unseen"] = kendall_tau(pred[rest], table.label("test")[rest])
    return out


def check_nb201_sizes(n_train: int, n_val: int) -> None:
    """The TNASP sizes that fit NAS-Bench-201 and that training accepts, else one line before any data is read."""
    from .data.nb201 import NUM_CELLS

    if n_train >= NUM_CELLS:
        raise NNFormerError(f"--n-train must be below the {NUM_CELLS:,} NAS-Bench-201 cells, got {n_train}")
    if n_train < MIN_TRAIN:
        raise NNFormerError(f"--n-train must be at least {MIN_TRAIN}, got {n_train}")
    if 0 < n_val < MIN_VALIDATION:
        raise NNFormerError(f"--n-val must be 0 (no validation) or at least {MIN_VALIDATION}, got {n_val}")
    if n_train + n_val > NUM_CELLS:
        raise NNFormerError(f"--n-train {n_train} and --n-val {n_val} add up to more than the {NUM_CELLS:,} "
                            f"NAS-Bench-201 cells: --n-val can be at most {NUM_CELLS - n_train:,} here")


def nb201_training_set(n_train: int, n_val: int = 1024, split: str = "tnasp", label: str = "val", seed: int = 0,
                       data_dir=None) -> TrainingSet:
    from .data.benchmarks import nb201_table
    from .protocols import random_split, tnasp_split

    check_nb201_sizes(n_train, n_val)
    table = nb201_table(data_dir)
    n = len(table)
    parts = tnasp_split(n, n_train, n_val) if split == "tnasp" else random_split(n, n_train, n_val, seed=seed)
    return TrainingSet(
        "NB201", table.graphs, table.label(label), parts,
        {"space": "nb201", "split": split, "n_train": len(parts.train), "n_val": len(parts.val), "train_label": label},
        lambda pred, bounds=None: nb201_metrics(pred, table, parts.train),
        lambda m: (f"Kendall tau over all {n:,} cells: {m['tau_test']:.4f} (test label), {m['tau_val']:.4f} (val "
                   f"label); unseen cells only {m['tau_test_unseen']:.4f}"),
        {"true": table.label("test"), "xlabel": "true CIFAR-10 test accuracy (%)",
         "ylabel": f"predicted {label} accuracy (%)", "name": "Kendall tau"})


def latency_summary(m: dict) -> str:
    """One line of a latency run's metrics (:func:`nnformer.metrics.report`)."""
    return (f"on the {m['n_test']:,} {m.get('unit', 'cells')} not trained on: MAPE {m['mape']:.2f}%, Acc(10%) "
            f"{m['acc10']:.1f}, Acc(5%) {m['acc5']:.1f}, Kendall tau {m['tau_test']:.4f}, Spearman "
            f"{m['spearman_test']:.4f}" + (f"; {100 * iv['level']:.0f}% interval holds {iv['coverage']:.1f}% of them "
                                           f"(median width x{iv['median_width_ratio']:.2f})"
                                           if (iv := m.get("interval")) else ""))


def check_latency_sizes(source, n_train: int | None):
    """The parsed ``source`` (:func:`~nnformer.latency.sources.parse_source`), once ``n_train`` is enough for a
    benchmark table's random draw (a dataset directory's split checks its families when it is read)."""
    from .latency.sources import parse_source

    src = parse_source(source)
    if src.kind != "dataset" and (n_train is None or n_train < MIN_TRAIN):
        raise NNFormerError(f"--n-train must be at least {MIN_TRAIN}, got {n_train}")
    return src


def _at(bounds, idx):
    return None if bounds is None else (bounds[0][idx], bounds[1][idx], bounds[2])


def latency_training_set(source, n_train: int | None = None, seed: int = 0, data_dir=None,
                         correct_drift: bool = False) -> TrainingSet:
    """``source``: ``help-nb201:DEVICE``, ``help-fbnet:DEVICE`` (``n_train`` random architectures train) or a
    dataset directory (its per-family split; ``n_train`` is not used)."""
    from .latency.sources import load_latency_data
    from .metrics import mape, report
    from .protocols import calibrated_random_split, family_split

    src = check_latency_sizes(source, n_train)
    data = load_latency_data(src, data_dir, correct_drift=correct_drift)  # an unknown device: one line, first
    ms = data.ms
    if src.kind == "dataset":
        split = family_split(data.families, [r["index"] for r in data.rows], cal_share=0.1,  # 80 / 10 / 10
                             what=src.title)
        fam = np.asarray(data.families)
        record = {"space": src.name, "split": "family-80/10/10", "n_train": len(split.train), "n_val": 0,
                  "n_calibration": len(split.cal), "families": sorted(set(data.families)),
                  "correct_drift": bool(correct_drift)}
        xlabel = "measured latency (ms)"
    else:
        # the interval is calibrated on cells not trained on, which then stay out of the test metrics
        split = calibrated_random_split(len(data.graphs), n_train, seed)
        record = {"space": src.name, "split": "random", "n_train": len(split.train), "n_val": 0,
                  "n_calibration": len(split.cal)}
        xlabel = f"measured latency on {src.device} (ms)"

    def evaluate(pred, bounds=None):
        m = report(pred[split.test], ms[split.test], bounds=_at(bounds, split.test))
        if src.kind == "dataset":
            m["unit"] = "models"
            m["per_family_mape"] = {f: mape(pred[idx], ms[idx])
                                    for f in dict.fromkeys(data.families) if len(idx := np.intersect1d(
                                        split.test, np.flatnonzero(fam == f)))}
        return m

    return TrainingSet(src.title, data.graphs, ms, split, record, evaluate, latency_summary,
                       {"true": ms, "xlabel": xlabel, "ylabel": "predicted latency (ms)", "name": "MAPE",
                        "key": "mape", "fmt": "{:.2f}%"})


def finished_run(out, predictor) -> dict | None:
    """What ``metrics.json`` holds when the results directory ``out`` already holds this run, finished: ``predictor``
    was fitted there again with the same settings (its checkpoint resumed at the end, no epoch left to run) and
    :func:`write_results` had written the predictor and its metrics. ``None`` otherwise: the results are still to be
    written."""
    import json
    from pathlib import Path

    out = Path(out)
    done = out / "metrics.json"
    if predictor.result_.epochs_run == 0 and done.is_file() and (out / "predictor.pt").is_file():
        return json.loads(done.read_text())
    return None


def write_results(predictor, job: TrainingSet, out, *, model_config=None, train_config=None,
                  started: float | None = None, command: str | None = None) -> dict:
    """Score a fitted ``predictor`` on every graph of ``job`` and write the results directory ``out`` (it exists) as
    ``nnformer train`` does: ``predictor.pt``; ``predictions.npy``, a prediction for every graph; ``scatter.png``,
    predicted against true with the training graphs highlighted; and last ``metrics.json``, whose presence marks a
    finished run (:func:`finished_run`). Each file is written atomically.

    Args:
        predictor: fitted on ``job``'s training split; calibrated on its calibration split, the metrics score its
            prediction interval as well.
        job: what it was trained on (:func:`nb201_training_set`, :func:`latency_training_set`).
        out: the results directory.
        model_config: the network config recorded (default: the predictor's).
        train_config: the training config recorded (default: the predictor's).
        started: a :func:`time.perf_counter` reading taken when the run began (``wall_seconds`` counts from it;
            default: now).
        command: the command line recorded.

    Returns:
        What ``metrics.json`` holds: ``job.record``, the task, recipe, settings and configs, the metrics
        (``job.evaluate``; ``job.summary`` of it is the run's one-line report), the best validation tau and epoch,
        ``train_seconds`` (across restarts), ``restarts``, ``wall_seconds``, ``eval_seconds``, the command, torch's
        threads, the world size, the machine and the code version.
    """
    import dataclasses
    import os
    import time
    from pathlib import Path

    import torch

    from .io import atomic_path, atomic_write_json
    from .machine import code_version
    from .machine import describe as describe_machine
    from .plots import scatter_pred_true

    started = time.perf_counter() if started is None else started
    out = Path(out)
    model_config = predictor.model_config_ if model_config is None else model_config
    train_config = predictor.train_config_ if train_config is None else train_config
    predictor.save(out / "predictor.pt")
    t_eval = time.perf_counter()
    if predictor.header_.get("interval"):
        pred, lo, hi = predictor.predict_interval(job.graphs)
        metrics = job.evaluate(pred, (lo, hi, predictor.header_["interval"]["level"]))
    else:
        pred = predictor.predict(job.graphs)
        metrics = job.evaluate(pred)
    plot = job.plot
    value = plot.get("fmt", "{:.4f}").format(metrics[plot.get("key", "tau_test")])
    scatter_pred_true(pred, plot["true"], out / "scatter.png", highlight=job.split.train,
                      title=f"NN-Former on {job.what}, N={len(job.split.train)}: {plot['name']} {value} over "
                            f"{'all ' if predictor.task == 'accuracy' else 'the unseen of '}{len(job.graphs):,} cells",
                      xlabel=plot["xlabel"], ylabel=plot["ylabel"])
    result = {
        **job.record, "task": predictor.task, "recipe": predictor.recipe_.to_dict(), "settings": predictor.settings,
        "model_config": dataclasses.asdict(model_config), "train_config": dataclasses.asdict(train_config),
        **metrics, "best_val_tau": predictor.result_.best_val_tau, "best_epoch": predictor.result_.best_epoch,
        # training time of the whole run, across restarts; wall time of this invocation (data loading included)
        "train_seconds": predictor.result_.seconds, "restarts": predictor.result_.restarts,
        "wall_seconds": time.perf_counter() - started, "eval_seconds": time.perf_counter() - t_eval,
        "command": command,
        "torch_threads": torch.get_num_threads(), "world_size": int(os.environ.get("WORLD_SIZE", 1)),
        "machine": describe_machine(), "code": code_version(),
    }
    with atomic_path(out / "predictions.npy") as tmp:
        np.save(tmp, pred)
    atomic_write_json(out / "metrics.json", result, indent=2)  # last: its presence marks a finished run
    return result


@dataclass
class TrainRun:
    """What :func:`train_run` leaves: the training set, the results directory and what its ``metrics.json`` holds."""
    job: TrainingSet
    out: Path
    result: dict  # what metrics.json holds (write_results)
    finished: bool  # True: out held this run, finished; its record stands and nothing was written

    def report(self) -> list[str]:
        """The lines ``nnformer train`` prints: the metrics' one-line summary, then, when this run wrote its
        results, its times and the files it wrote."""
        r, out = self.result, self.out
        if self.finished:
            return [self.job.summary(r)]
        restarted = f" over {r['restarts'] + 1} invocations" if r["restarts"] else ""
        return [self.job.summary(r),
                f"time: {r['train_seconds']:.0f}s to train{restarted}, {r['eval_seconds']:.1f}s to score "
                f"{len(self.job.graphs):,} cells; wrote {out / 'predictor.pt'}, {out / 'metrics.json'}, "
                f"{out / 'scatter.png'}"]


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def train_run(out, *, task: str = "accuracy", data=None, recipe: str | None = None, settings: dict | None = None,
              n_train: int = 781, n_val: int = 1024, split: str = "tnasp", label: str = "val", data_dir=None,
              correct_drift: bool = False, progress: bool = True, command: str | None = None, rank: int = 0,
              log: Callable[[str], None] = _to_stderr) -> TrainRun | None:
    """Train a predictor as ``nnformer train`` does and write its results directory ``out``
    (:func:`write_results`); rerun with the same arguments, it resumes from ``out/checkpoint.pt``. Settings and sizes
    are checked before any data is read or written; one process at a time writes ``out`` (the others get
    :class:`~nnformer.errors.DataError`).

    Args:
        out: the results directory (made when missing).
        task: ``"accuracy"`` (NB201 under :func:`nb201_training_set`) or ``"latency"`` (``data`` under
            :func:`latency_training_set`).
        data: the latency source; accuracy takes none.
        recipe: a name of :data:`nnformer.recipes.RECIPES` (default: ``networks`` for a dataset directory, else
            the default recipe).
        settings: overrides of the recipe (``--set`` and ``--device``), typed and checked by the
            :class:`~nnformer.Predictor`.
        n_train, n_val, split, label: the NB201 protocol (:func:`nb201_training_set`); ``n_train`` is the
            random draw of a latency benchmark table as well.
        data_dir, correct_drift: where the data is and how latency labels are read (:func:`latency_training_set`).
        progress: show progress bars.
        command: the command line recorded.
        rank: this process's rank under ``torchrun``; every rank trains, rank 0 alone writes the results.
        log: called with each line of progress (default: printed on stderr).

    Returns:
        The :class:`TrainRun` (``finished`` when ``out`` already held this run, finished: nothing is written
        again), or ``None`` on a rank other than 0.

    Raises:
        NNFormerError: bad settings, sizes, data or output directory, in one line.
    """
    import contextlib
    import os
    import time

    from .io import check_output_dir, exclusive_lock, remove_stale_temporaries
    from .predictor import Predictor
    from .protocols import check_split
    from .recipes import DEFAULT_RECIPE

    if recipe is None:  # whole networks from a dataset directory train with their own recipe
        whole_networks = task == "latency" and data and os.path.isdir(data)
        recipe = "networks" if whole_networks else DEFAULT_RECIPE
    predictor = Predictor(recipe, settings=settings, task=task, progress=progress)  # refused before data is read
    if task == "accuracy" and data:
        raise NNFormerError("--data names latency data; accuracy trains on NB201 (--label picks the label)")
    if task == "latency":  # sizes refused before anything is read or written
        check_latency_sizes(data, n_train)
    else:
        check_nb201_sizes(n_train, n_val)
    out = check_output_dir(out)
    t_start = time.perf_counter()
    seed = predictor.recipe_at(n_train).train.seed
    job = (latency_training_set(data, n_train, seed, data_dir, correct_drift) if task == "latency" else
           nb201_training_set(n_train, n_val, split, label, seed, data_dir))
    parts, y, pick = check_split(job.split, job.what, calibrate=task == "latency"), job.y, job.pick
    _, model_cfg, train_cfg = predictor.plan(pick(parts.train))
    cal = f", {len(parts.cal)} calibrate the interval" if len(parts.cal) else ""
    log(f"nnformer train: {job.what}, {len(parts.train)} train / {len(parts.val)} val cells "
        f"({job.record['split']}{cal}), recipe {recipe}: {model_cfg.n_layers} blocks, dim {model_cfg.dim}, "
        f"{train_cfg.epochs} epochs, masks {model_cfg.mask_mode}, ffn {model_cfg.ffn_mode}, seed {train_cfg.seed}")
    with contextlib.ExitStack() as stack:
        if rank == 0:  # one writer per output directory; what a killed writer left there goes first
            stack.enter_context(exclusive_lock(out, "training run"))
            remove_stale_temporaries(out, whole_directory=True)
        predictor.fit(pick(parts.train), y[parts.train], pick(parts.val), y[parts.val],
                      checkpoint=out / "checkpoint.pt")
        if len(parts.cal):  # as many as check_split asks for
            predictor.calibrate(pick(parts.cal), y[parts.cal])
        if rank != 0:
            return None  # every rank holds the same weights; rank 0 writes the results
        done = finished_run(out, predictor)
        if done is not None:  # a finished run, rerun with the same settings: its record stands
            log(f"nnformer train: {out} holds this run, finished; nothing to do (remove {out / 'metrics.json'} to "
                f"score it again)")
            return TrainRun(job, out, done, finished=True)
        result = write_results(predictor, job, out, model_config=model_cfg, train_config=train_cfg, started=t_start,
                               command=command)
    return TrainRun(job, out, result, finished=False)
