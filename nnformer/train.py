"""Training NN-Former (docs/method.md section 6): loss, AdamW, warm-up + cosine, EMA, resumable checkpoints.

Loss on a batch where every graph appears twice (two dropout draws, "the consistency copy")::

    MSE(y_hat, y) + w_rank * L1(y_hat - y_hat[perm], y - y[perm]) + w_cons * L1(y_hat_pass1, y_hat_pass2)

Checkpoints hold model, optimizer, step, EMA and every RNG state, and are read with ``weights_only=True``, so a
killed run restarted with the same arguments ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .batching import EncodedGraphs
from .errors import CheckpointError
from .io import atomic_torch_save, remove_stale_temporaries
from .metrics import kendall_tau
from .model import param_groups
from .regressors import build_model, model_type_of


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3000
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of all steps with linear warm-up
    min_lr_ratio: float = 0.1  # cosine decays to min_lr_ratio * lr
    ema_decay: float = 0.99
    w_rank: float = 0.2  # pairwise-difference L1 term
    w_cons: float = 1.0  # dropout-consistency L1 term (0 switches the consistency copy off)
    bucket: bool = True  # batches of equal-size graphs
    size_sorted: bool = False  # batches of neighbouring sizes (whole networks: sizes rarely repeat); over bucket
    max_cells: int = 0  # size_sorted: at most graphs x nodes^2 per batch (0: no cap); large graphs come fewer a batch
    eval_every: int = 5  # epochs between validations (and checkpoints)
    select: str = "best_val"  # keep the EMA weights of the best validation tau, or the "last" ones
    seed: int = 0
    device: str = "cpu"  # "cuda" to train on a GPU
    amp: bool = False  # automatic mixed precision (bfloat16 autocast) on CUDA; ignored on CPU
    # regression term: "mse" on the targets, or "relative": the squared relative error of the label itself,
    # (y_hat / y - 1)^2 as NNLP trains latency, for targets that are logs scaled by 1 / relative_scale
    loss: str = "mse"
    relative_scale: float = 1.0  # set by the Predictor: the latency target's standard deviation of log labels

    def __post_init__(self):
        checks = [("epochs", self.epochs >= 1, "at least 1"), ("batch_size", self.batch_size >= 1, "at least 1"),
                  ("lr", self.lr > 0, "positive"), ("weight_decay", self.weight_decay >= 0, "non-negative"),
                  ("warmup", 0 <= self.warmup <= 1, "in [0, 1]"),
                  ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]"),
                  ("ema_decay", 0 <= self.ema_decay < 1, "in [0, 1)"), ("w_rank", self.w_rank >= 0, "non-negative"),
                  ("w_cons", self.w_cons >= 0, "non-negative"), ("eval_every", self.eval_every >= 1, "at least 1"),
                  ("select", self.select in ("best_val", "last"), "'best_val' or 'last'"),
                  ("loss", self.loss in ("mse", "relative"), "'mse' or 'relative'"),
                  ("relative_scale", self.relative_scale > 0, "positive"),
                  ("max_cells", self.max_cells >= 0, "non-negative"),
                  # NumPy's generators refuse a negative seed, torch's one beyond 64 bits
                  ("seed", 0 <= self.seed < 2**62, "in [0, 2**62)")]
        for name, ok, want in checks:
            # NaN fails every comparison, so it is refused here too
            if not ok:
                raise ValueError(f"{name} must be {want}, got {getattr(self, name)!r}")


def nnformer_loss(pred: torch.Tensor, y: torch.Tensor, w_rank: float, w_cons: float,
                  perm: torch.Tensor | None = None, relative: float | None = None) -> tuple[torch.Tensor, dict]:
    """The three-term loss. With ``w_cons > 0``, ``pred`` and ``y`` are ``[pass1, pass2]`` halves of one batch.

    ``relative``: the first term is the squared relative error of the labels, ``(exp(relative * (pred - y)) - 1)^2``
    for targets that are ``log(label) / relative`` (the difference is clipped to +-5 in log space), instead of MSE.
    """
    if relative is None:
        mse = F.mse_loss(pred, y)
    else:
        mse = torch.expm1((relative * (pred - y)).clamp(-5.0, 5.0)).pow(2).mean()
    if perm is None:
        perm = torch.randperm(len(pred))
    rank = F.l1_loss(pred - pred[perm], y - y[perm])
    total = mse + w_rank * rank
    cons = torch.zeros((), dtype=pred.dtype, device=pred.device)
    if w_cons > 0:
        p1, p2 = pred.chunk(2)
        cons = F.l1_loss(p1, p2)
        total = total + w_cons * cons
    return total, {"mse": mse.item(), "rank": rank.item(), "cons": cons.item()}


def lr_factor(step: int, total: int, warmup: float, min_ratio: float) -> float:
    """Linear warm-up over ``warmup * total`` steps, then cosine from 1 to ``min_ratio`` (stepped per batch)."""
    w = max(1, int(round(warmup * total)))
    if step < w:
        return (step + 1) / w
    t = min(1.0, (step - w) / max(1, total - w))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for every parameter (one multi-tensor call), buffers copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over ``param_groups``: the fused kernel where this torch has it for the parameters' device (CPU since
    torch 2.4; one pass over all parameters instead of a dozen per tensor), else the multi-tensor one."""
    groups = param_groups(model, weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, foreach=True)


@torch.no_grad()
def predict_encoded(model: torch.nn.Module, data: EncodedGraphs, batch_size: int = 2048, device: str = "cpu",
                    progress: Callable | None = None) -> np.ndarray:
    """Predictions for every graph of ``data``, in order; batches of equal-size graphs avoid padding."""
    model.eval()
    out = np.empty(len(data), dtype=np.float64)
    for idx in data.batches(batch_size, bucket=True):
        out[idx] = model(data.batch(idx).to(device)).double().cpu().numpy()
        if progress:
            progress(len(idx))
    return out


def distributed() -> tuple[int, int]:
    """``(world_size, rank)`` of the torch.distributed group, ``(1, 0)`` outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def shard(idx: np.ndarray, world: int, rank: int) -> np.ndarray:
    """This rank's equal share of a global batch; a batch smaller than the world is processed whole by every rank
    (the averaged gradient is then the single-process one)."""
    return idx if world == 1 or len(idx) < world else np.array_split(idx, world)[rank]


CHECKPOINT_FORMAT = "nnformer-predictor-2"


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint without executing code (``weights_only=True``).

    One format serves a saved predictor and a training checkpoint: the predictor's keys (``format``,
    ``model_type``, ``model_config``, ``train_config``, ``recipe``, ``vocab``, ``scale``, ``model``, ``history``),
    plus ``train_state`` while training runs."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, not a checkpoint") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint (no zip archive)")
    try:  # every member's CRC, settings and weights alike: an altered or truncated file is named as such
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        bad = "the archive's directory"
    if bad is not None:
        raise CheckpointError(f"cannot read checkpoint {path}: altered, truncated or corrupt archive ({bad} fails its "
                              f"check)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types, with messages of many lines
        text = str(e)
        if "Weights only load failed" in text:
            why = "it holds objects other than tensors and plain values, which are never unpickled"
        elif "zip archive" in text or "central directory" in text:
            why = "truncated or corrupt archive"
        else:
            why = (text.splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"cannot read checkpoint {path}: {why}") from None
    if not isinstance(ck, dict) or "model_config" not in ck:
        raise CheckpointError(f"{path} is not an nnformer checkpoint")
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {ck.get('format')!r}, this nnformer reads "
                              f"{CHECKPOINT_FORMAT!r}: train it again with this version")
    return ck


@dataclass
class TrainResult:
    model: torch.nn.Module  # the selected EMA weights
    history: list[dict] = field(default_factory=list)
    best_val_tau: float = float("nan")
    best_epoch: int = -1
    seconds: float = 0.0  # training time of the whole run, across restarts (validation included, callbacks not)
    restarts: int = 0  # how many times the run was resumed from its checkpoint
    epochs_run: int = 0  # epochs trained by this call (0: the checkpoint held a finished run)


@dataclass
class _Run:
    """Everything a training checkpoint holds, and the objects that training updates."""

    model: torch.nn.Module  # the weights being trained
    net: torch.nn.Module  # the model, wrapped in DistributedDataParallel under torchrun
    ema: torch.nn.Module  # the exponential moving average of the weights: what a predictor keeps
    opt: torch.optim.Optimizer
    gen: torch.Generator  # batch order: the same on every rank
    perm_gen: torch.Generator  # rank-term permutations of this rank's rows
    best: dict | None = None  # EMA weights of the best validation so far
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_tau: float = -math.inf
    best_epoch: int = -1
    elapsed: float = 0.0
    restarts: int = 0


def _start(model_cfg, cfg: TrainConfig, world: int, rank: int) -> _Run:
    """Seeded network, EMA copy, optimizer and generators (the order of the draws fixes the weights)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    perm_gen = torch.Generator().manual_seed(cfg.seed + 1 + rank)
    model = build_model(model_cfg).to(cfg.device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: the last block runs for [CLS] alone, where BGIFFN's graph weights are not used
        net = DistributedDataParallel(model, device_ids=[torch.device(cfg.device).index] if "cuda" in cfg.device
                                      else None, find_unused_parameters=True)
        torch.manual_seed(cfg.seed + 1000 * rank)  # different dropout draws per rank; weights come from rank 0
    ema = copy.deepcopy(model)
    return _Run(model, net, ema, make_optimizer(model, cfg.lr, cfg.weight_decay), gen, perm_gen)


def _resume(run: _Run, path: Path, header: dict, cuda: bool, device: str) -> None:
    """Continue from the training checkpoint at ``path``, which must have been written with the same settings."""
    ck = load_checkpoint(path)
    st = ck.get("train_state")
    if st is None:
        raise CheckpointError(f"{path} holds a finished predictor, not a training state to resume")
    if any(ck.get(k) != v for k, v in header.items()):
        raise CheckpointError(f"{path} was written with other settings or data; remove it or use another --out")
    run.model.load_state_dict(st["model"])
    run.ema.load_state_dict(ck["model"])
    run.opt.load_state_dict(st["optimizer"])
    run.best, run.epoch, run.step, run.history = st["best"], st["epoch"], st["step"], st["history"]
    run.best_tau, run.best_epoch, run.elapsed = st["best_tau"], st["best_epoch"], st["elapsed"]
    run.restarts = st.get("restarts", 0) + 1
    torch.set_rng_state(st["torch_rng"])
    if cuda and st.get("cuda_rng") is not None:  # dropout's masks on a GPU come from its own generator
        torch.cuda.set_rng_state(st["cuda_rng"], torch.device(device))
    run.gen.set_state(st["gen_rng"])
    run.perm_gen.set_state(st["perm_rng"])


def _train_epoch(run: _Run, cfg: TrainConfig, train: EncodedGraphs, y_all: torch.Tensor, total: int,
                 world: int, rank: int, use_amp: bool) -> dict:
    """One epoch of optimizer steps; returns the last step's loss terms."""
    run.model.train()
    last = {}
    for idx in train.batches(cfg.batch_size, cfg.bucket, generator=run.gen, size_sorted=cfg.size_sorted,
                             max_cells=cfg.max_cells):
        idx = shard(idx, world, rank)
        batch = train.batch(idx).to(cfg.device)
        y = y_all[idx].to(cfg.device)
        if cfg.w_cons > 0:
            batch, y = batch.repeat(2), y.repeat(2)
        for g in run.opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(run.step, total, cfg.warmup, cfg.min_lr_ratio)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            pred = run.net(batch).float()
        perm = torch.randperm(len(y), generator=run.perm_gen).to(cfg.device)
        loss, parts = nnformer_loss(pred, y, cfg.w_rank, cfg.w_cons, perm,
                                    cfg.relative_scale if cfg.loss == "relative" else None)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        ema_update(run.ema, run.model, cfg.ema_decay)
        run.step += 1
        last = {"loss": loss.item(), **parts}
    run.epoch += 1
    return last


def _validate(run: _Run, cfg: TrainConfig, val: EncodedGraphs | None, y_val, rec: dict) -> None:
    """Validation tau of the EMA weights into ``rec``; keeps a copy of the best ones."""
    if val is not None and len(val) > 1:
        rec["val_tau"] = kendall_tau(predict_encoded(run.ema, val, device=cfg.device), y_val)
        if rec["val_tau"] > run.best_tau:
            run.best_tau, run.best_epoch = rec["val_tau"], run.epoch
            run.best = copy.deepcopy(run.ema.state_dict())


def _state_payload(run: _Run, cfg: TrainConfig, cuda: bool) -> dict:
    return {
        "model": run.model.state_dict(), "optimizer": run.opt.state_dict(), "best": run.best, "epoch": run.epoch,
        "step": run.step, "history": run.history, "best_tau": run.best_tau, "best_epoch": run.best_epoch,
        "elapsed": run.elapsed, "restarts": run.restarts, "torch_rng": torch.get_rng_state(),
        "gen_rng": run.gen.get_state(),
        "cuda_rng": torch.cuda.get_rng_state(torch.device(cfg.device)) if cuda else None,
        "perm_rng": run.perm_gen.get_state(),
    }


def checkpoint_header(model_cfg, cfg: TrainConfig, **extra) -> dict:
    """The keys a checkpoint shares with a saved predictor (the predictor adds recipe, vocab and scale)."""
    return {"format": CHECKPOINT_FORMAT, "model_type": model_type_of(model_cfg), "model_config": asdict(model_cfg),
            "train_config": asdict(cfg), **extra}


def fit(model_cfg, cfg: TrainConfig, train: EncodedGraphs, y_train: np.ndarray,
        val: EncodedGraphs | None = None, y_val: np.ndarray | None = None,
        checkpoint: str | os.PathLike | None = None, progress: bool = True,
        on_eval: Callable[[dict, torch.nn.Module], None] | None = None, header: dict | None = None,
        init_state: dict | None = None) -> TrainResult:
    """The training loop behind :meth:`nnformer.Predictor.fit` (use that: it resolves the recipe, the vocabulary
    and the label scale). Resumes from ``checkpoint`` when it exists and writes it every ``eval_every`` epochs;
    ``header`` (the predictor's keys) goes into the checkpoint, and a resumed one must match it.

    Torch's global random state is the caller's again when this returns: training seeds and draws from it inside
    :func:`torch.random.fork_rng`. Under ``torchrun`` (an initialised process group) every rank sees the same batch
    order and trains on its shard of each batch through DistributedDataParallel; only rank 0 writes the checkpoint
    and shows progress. ``init_state``: start from these weights (and their EMA) instead of a fresh network: a
    fine-tuning run.
    """
    cuda = torch.device(cfg.device).type == "cuda"
    devices = [torch.device(cfg.device).index or 0] if cuda else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        return _fit(model_cfg, cfg, train, y_train, val, y_val, checkpoint, progress, on_eval,
                    header or checkpoint_header(model_cfg, cfg), cuda, init_state)


def _fit(model_cfg, cfg, train, y_train, val, y_val, checkpoint, progress, on_eval, header, cuda,
         init_state=None) -> TrainResult:
    world, rank = distributed()
    run = _start(model_cfg, cfg, world, rank)
    if init_state is not None:
        run.model.load_state_dict(init_state)
        run.ema.load_state_dict(init_state)
    y_all = torch.as_tensor(np.asarray(y_train), dtype=torch.float32)
    total = cfg.epochs * len(train.batches(cfg.batch_size, cfg.bucket, size_sorted=cfg.size_sorted,
                                           max_cells=cfg.max_cells))
    ck_path = Path(checkpoint) if checkpoint else None
    if ck_path is not None:
        remove_stale_temporaries(ck_path)
        if ck_path.is_file():
            _resume(run, ck_path, header, cuda, cfg.device)
    if world > 1 and rank != 0:
        ck_path = None
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, initial=run.epoch, desc="train", unit="ep", dynamic_ncols=True)
    t0 = time.perf_counter() - run.elapsed
    first_epoch = run.epoch
    try:  # the bar ends before an interrupt's message is printed
        while run.epoch < cfg.epochs:
            last = _train_epoch(run, cfg, train, y_all, total, world, rank, cfg.amp and cuda)
            if run.epoch % cfg.eval_every == 0 or run.epoch == cfg.epochs:
                rec = {"epoch": run.epoch, "step": run.step, "seconds": time.perf_counter() - t0, **last}
                _validate(run, cfg, val, y_val, rec)
                run.history.append(rec)
                if bar is not None:
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", val_tau=f"{rec.get('val_tau', float('nan')):.4f}")
                if on_eval:
                    # the callback sees the record and the current EMA model (e.g. to score it on more cells and add
                    # that to the record, which the checkpoint below then keeps); its time is not training time
                    tc = time.perf_counter()
                    on_eval(rec, run.ema)
                    t0 += time.perf_counter() - tc
                if ck_path is not None:
                    run.elapsed = time.perf_counter() - t0
                    atomic_torch_save({**header, "model": run.ema.state_dict(), "history": run.history,
                                       "train_state": _state_payload(run, cfg, cuda)}, ck_path)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if cfg.select == "best_val" and run.best is not None:
        run.ema.load_state_dict(run.best)
    run.ema.eval()
    seconds = time.perf_counter() - t0 if run.epoch > first_epoch else run.elapsed
    return TrainResult(run.ema, run.history, run.best_tau, run.best_epoch, seconds, run.restarts,
                       run.epoch - first_epoch)
