"""Architecture search on a benchmark table, guided by a predictor, and the searches it is measured against.

A query returns a cell's **validation** accuracy from the table (what a real search would measure); the search
returns the queried cell with the best validation accuracy, and what is reported is that cell's **test** accuracy.

Methods (:data:`METHODS`):

* ``nnformer`` / ``gcn``: ``init`` random cells, then rounds: train the predictor (the project's default recipe;
  the GCN with the same training) on every cell queried so far, score every cell of the space (NB201's 15,625 and the
  NB101 subset's 2,500 are small enough), query the ``per_round`` best-scored cells not yet queried;
  ``ensemble=K`` (> 1) trains K predictors a round (different seeds) and ranks the cells by a draw from each cell's
  ensemble mean and spread (independent Thompson sampling, as BANANAS, White et al. 2021, does): an uncertainty
  acquisition at K times the training;
* ``nnformer-warm``: the same, but from the second round on the previous round's predictor is fine-tuned for
  :data:`WARM_STEPS` steps on the cells queried so far instead of trained afresh (cheaper rounds);
* ``random``: cells drawn at random without repetition;
* ``evolution``: regularised evolution (Real et al., 2019): a population of the last ``population`` queries; each
  step samples ``sample`` of them, mutates the best (one op of the cell changed; on the NB101 subset, which is not
  closed under mutation, one of the parent's nearest cells) and queries the child; the oldest member leaves.

A latency constraint (:func:`constrain_latency`) restricts every method to the cells whose *predicted* latency on a
device is within a budget; the search then maximises accuracy among them, and the report gives the returned cell's
*true* latency (HELP's measurement) and how far it is from the best cell that truly meets the budget.

Every round's randomness comes from ``(seed, round)``, so a search stopped between rounds and resumed from its
history file (:func:`search` with ``history=``) makes the same queries as one run straight through.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import DataError, NNFormerError

METHODS = ("nnformer", "nnformer-warm", "gcn", "random", "evolution")
TRAIN_STEPS = 300  # predictor methods: training steps a round (from scratch)
WARM_STEPS = 300  # nnformer-warm: after its first round, the previous predictor fine-tuned this many steps a round
HISTORY_FORMAT = "nnformer-search/1"
# "space": every cell of the space is a candidate; "mutation": the cells one or two mutations away from the
# ``parents`` best queried cells (local search guided by the predictor; the whole space when those run out)
ACQUISITIONS = ("space", "mutation")
# fields added to SearchConfig after histories were first written, with the value those histories implicitly had:
# left out of a history's header at that value, so the older histories stay valid
_IMPLICIT = {"train_steps": None, "acquisition": "space", "parents": 10, "ensemble": 1}


def config_header(cfg: "SearchConfig") -> dict:
    """The config as a history file's header records it."""
    return {k: v for k, v in asdict(cfg).items() if not (k in _IMPLICIT and v == _IMPLICIT[k])}


@dataclass
class SearchSpace:
    name: str
    graphs: list
    val: np.ndarray  # what a query returns
    test: np.ndarray  # what is reported
    neighbours: Callable[[int], np.ndarray]  # cells one mutation away
    vocab: object = None
    allowed: np.ndarray | None = None  # bool per cell: the cells a search may query (a constraint); None: all
    latency: np.ndarray | None = None  # true latency (ms) per cell on the constraint's device: reported, never used
    constraint: dict | None = None  # the constraint's description (budget, device, predictor, cells allowed)

    def pool(self) -> np.ndarray:
        return np.arange(len(self.graphs)) if self.allowed is None else np.flatnonzero(self.allowed)


@dataclass(frozen=True)
class SearchConfig:
    method: str = "nnformer"
    queries: int = 150
    seed: int = 0
    init: int = 10
    per_round: int = 10
    population: int = 20
    sample: int = 5
    warm_steps: int = 0  # predictor methods: > 0 fine-tunes the previous round's predictor this many steps
    # predictor methods: training steps a round (None: the recipe's 1,500; a ``steps`` setting overrides both): 300
    # matched 1,500 in quality and met the time target (benchmarks/results/search-recipe)
    train_steps: int | None = TRAIN_STEPS
    acquisition: str = "space"  # predictor methods: candidates scored (ACQUISITIONS)
    parents: int = 10  # acquisition "mutation": the best queried cells whose neighbourhoods are the candidates
    ensemble: int = 1  # predictor methods: > 1 trains this many predictors a round, cells ranked by Thompson draws

    def __post_init__(self):
        if self.method not in METHODS:
            raise NNFormerError(f"unknown search method {self.method!r}; methods: {', '.join(METHODS)}")
        if self.acquisition not in ACQUISITIONS:
            raise NNFormerError(f"unknown acquisition {self.acquisition!r}; acquisitions: {', '.join(ACQUISITIONS)}")
        if self.train_steps is not None and self.train_steps < 1:
            raise NNFormerError(f"train_steps must be at least 1, got {self.train_steps}")
        if self.warm_steps < 0:
            raise NNFormerError(f"warm_steps must be 0 (retrain every round) or more, got {self.warm_steps}")
        if self.ensemble > 1 and (self.warm_steps or self.method.endswith("-warm")):
            raise NNFormerError("an ensemble is trained afresh every round: it does not go with warm start")
        for name in ("queries", "init", "per_round", "population", "sample", "parents", "ensemble"):
            if getattr(self, name) < 1:
                raise NNFormerError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.init > self.queries:
            raise NNFormerError(f"init ({self.init}) cannot exceed queries ({self.queries})")
        if self.sample > self.population:
            raise NNFormerError(f"sample ({self.sample}) cannot exceed population ({self.population})")


def nb201_search_space(data_dir=None, dataset: str = "cifar10") -> SearchSpace:
    """NAS-Bench-201 on ``dataset`` (cifar10, cifar100, imagenet16): the 200-epoch validation accuracy is queried,
    the test accuracy reported; a mutation changes one of the cell's six ops."""
    from .data.nb201 import DATASET_LABELS, load_nb201
    from .spaces.nb201 import OPS, parse_arch_str
    from .vocab import NB201

    if dataset not in DATASET_LABELS:
        raise NNFormerError(f"unknown NB201 dataset {dataset!r}; known: {', '.join(DATASET_LABELS)}")
    table = load_nb201(data_dir)
    val, test = (table.labels[k] for k in DATASET_LABELS[dataset])
    strs = table.arch_strs.tolist()
    ops = np.array([[OPS.index(o) for o in parse_arch_str(a)] for a in strs])
    index = {tuple(r): i for i, r in enumerate(ops.tolist())}

    def neighbours(i: int) -> np.ndarray:
        out = []
        for pos in range(ops.shape[1]):
            for op in range(len(OPS)):
                if op != ops[i, pos]:
                    child = ops[i].copy()
                    child[pos] = op
                    out.append(index[tuple(child.tolist())])
        return np.array(out)

    return SearchSpace(f"nb201-{dataset}", table.graphs, val, test, neighbours, NB201)


def nb101_search_space(data_dir=None, k: int = 8) -> SearchSpace:
    """The NAS-Bench-101 cells available (the 2,500-cell subset here): validation accuracy queried, test reported, in
    percent; a mutation moves to one of the ``k`` nearest cells by Hamming distance on (adjacency, ops)."""
    from .data.nb101 import load_nb101
    from .targets import as_percent
    from .vocab import NB101

    table = load_nb101(data_dir)
    name = "nb101" if len(table) > 100_000 else "nb101-subset"
    graphs, val, test = table.graphs, table.label("val"), table.label("test")
    width = max(g.num_nodes for g in graphs)
    ops = sorted({o for g in graphs for o in g.ops})
    codes = np.zeros((len(graphs), width * width + width * len(ops)), dtype=np.int8)
    for i, g in enumerate(graphs):
        n = g.num_nodes
        adj = np.zeros((width, width), dtype=np.int8)
        adj[:n, :n] = np.asarray(g.adj)
        onehot = np.zeros((width, len(ops)), dtype=np.int8)
        onehot[np.arange(n), [ops.index(o) for o in g.ops]] = 1
        codes[i] = np.concatenate([adj.ravel(), onehot.ravel()])

    def neighbours(i: int) -> np.ndarray:
        d = np.abs(codes - codes[i]).sum(1)
        d[i] = np.iinfo(d.dtype).max if d.dtype.kind == "i" else d.max() + 1
        return np.argsort(d, kind="stable")[:k]

    val, test = as_percent(val, test)  # as NB201's
    return SearchSpace(name, graphs, val, test, neighbours, NB101)


def load_search_space(space: str, data_dir=None, dataset: str = "cifar10") -> SearchSpace:
    if space == "nb201":
        return nb201_search_space(data_dir, dataset)
    if space == "nb101":
        return nb101_search_space(data_dir)
    raise NNFormerError(f"unknown search space {space!r}; spaces: nb201, nb101")


def constrain_latency(space: SearchSpace, predicted_ms, budget_ms: float, *, true_ms=None, device: str = "",
                      predictor: str = "") -> SearchSpace:
    """``space`` restricted to the cells whose predicted latency is at most ``budget_ms``; ``true_ms`` (the device's
    measured latency of every cell) is carried for the report only."""
    predicted_ms = np.asarray(predicted_ms, dtype=np.float64)
    if predicted_ms.shape != (len(space.graphs),):
        raise DataError(f"{len(predicted_ms)} predicted latencies for the {len(space.graphs):,} cells of {space.name}")
    if not np.isfinite(budget_ms) or budget_ms <= 0:
        raise NNFormerError(f"the latency budget must be a positive number of ms, got {budget_ms}")
    allowed = predicted_ms <= budget_ms
    if not allowed.any():
        raise NNFormerError(f"no cell of {space.name} is predicted to run within {budget_ms:g} ms on "
                            f"{device or 'the device'} (the fastest is predicted at {predicted_ms.min():.3g} ms)")
    constraint = {"budget_ms": float(budget_ms), "device": device, "predictor": predictor,
                  "cells_allowed": int(allowed.sum())}
    return dataclasses.replace(space, name=f"{space.name}, predicted latency on {device or 'the device'} <= "
                               f"{budget_ms:g} ms ({predictor})", allowed=allowed,
                               latency=None if true_ms is None else np.asarray(true_ms, dtype=np.float64),
                               constraint=constraint)


def latency_constrained_space(space: SearchSpace, device: str, budget_ms: float, predictor: str | None = None,
                              data_dir=None, bound: str = "point") -> SearchSpace:
    """NB201 ``space`` under a latency budget on HELP ``device``: latency predicted by ``predictor`` (a shipped
    predictor's name, a predictor directory or a ``.pt`` checkpoint; default the shipped ``help-nb201-<device>``),
    true latency from HELP's measurements for the report. ``bound="upper"`` compares the upper end of the
    predictor's calibrated interval (instead of its point prediction) with the budget: fewer cells, but the budget
    more often truly met."""
    if bound not in ("point", "upper"):
        raise NNFormerError(f"bound must be 'point' or 'upper', got {bound!r}")
    from .data.help import load_help_latency
    from .shipped import load_any

    if not space.name.startswith("nb201"):
        raise NNFormerError("a latency budget needs NAS-Bench-201 (HELP measured its cells, not NB101's)")
    true_ms = load_help_latency("nb201", device, data_dir)  # an unknown device fails here, before any predictor
    spec = predictor or f"help-nb201-{device}"
    p = load_any(spec)
    if p.task != "latency":
        raise NNFormerError(f"{spec} predicts {p.task}, not latency")
    if bound == "upper":
        _, _, predicted = p.predict_interval(space.graphs, batch_size=4096)
        spec = f"{spec}, upper end of its {100 * p.header_['interval'].get('level', 0.9):g}% interval"
    else:
        predicted = p.predict(space.graphs, batch_size=4096)
    return constrain_latency(space, predicted, budget_ms, true_ms=true_ms, device=device, predictor=str(spec))


def constraint_report(space: SearchSpace, rows: list[dict]) -> dict:
    """How the returned cell of a constrained search fares on the device: its true latency, whether the budget
    truly holds, and the gap (test accuracy) to the best cell that truly meets the budget."""
    c, ms = space.constraint or {}, space.latency
    if not c or ms is None:
        return {}
    best = rows[-1]["best_index"]
    truly = ms <= c["budget_ms"]
    best_feasible = int(np.flatnonzero(truly)[np.argmax(space.test[truly])])
    return {**c, "returned_latency_ms": float(ms[best]), "returned_predicted_ok": bool(space.allowed[best]),
            "holds": bool(truly[best]), "best_feasible_index": best_feasible,
            "best_feasible_test": float(space.test[best_feasible]),
            "gap_to_best_feasible": float(space.test[best_feasible] - space.test[best]),
            "cells_truly_feasible": int(truly.sum()),
            "allowed_truly_feasible": float(truly[space.allowed].mean())}


def _read_history(path: Path, header: dict) -> list[dict]:
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    try:
        head, rows = json.loads(lines[0]), [json.loads(ln) for ln in lines[1:]]
    except (IndexError, ValueError):
        raise DataError(f"{path}: not a search history (remove it to start again)") from None
    if head != header:
        raise DataError(f"{path} holds another search ({head.get('config')} on {head.get('space')}); use another "
                        f"--out or remove it")
    return rows


def _write_history(path: Path, header: dict, rows: list[dict]) -> None:
    from .io import atomic_write_text

    atomic_write_text(path, "\n".join(json.dumps(r) for r in [header, *rows]) + "\n")


def search(space: SearchSpace, cfg: SearchConfig, *, history: str | os.PathLike | None = None,
           settings: dict | None = None, progress: bool = True) -> list[dict]:
    """Run (or resume) one search; returns one row per query: ``query`` (1-based), ``index``, ``val``, ``test``,
    ``best_index``, ``best_val`` and ``best_test`` (the best cell so far by validation accuracy), ``round``,
    ``elapsed_s`` (wall time of the search so far, across resumes), ``code`` and ``machine``.

    ``history``: a JSON-lines file rewritten atomically after every round; an existing one of the same search
    (same space, config and settings) is resumed. ``settings``: recipe overrides for the predictor methods.
    """
    pool = space.pool()
    if cfg.queries > len(pool):
        raise NNFormerError(f"queries ({cfg.queries}) exceeds the {len(pool):,} cells of {space.name}")
    settings = dict(settings or {})
    header = {"format": HISTORY_FORMAT, "space": space.name, "config": config_header(cfg), "settings": settings}
    path = Path(history) if history is not None else None
    rows = _read_history(path, header) if path else []
    queried = [r["index"] for r in rows]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.queries, initial=len(rows), desc=f"search {cfg.method} seed {cfg.seed}", unit="query")
    encoded = model = None
    population: list[int] = queried[-cfg.population:]
    import time

    from .machine import code_version, describe_line

    stamp = {"code": code_version(), "machine": describe_line()}
    t0 = time.perf_counter() - (rows[-1]["elapsed_s"] if rows else 0.0)
    while len(queried) < cfg.queries:
        rnd = len(rows) and rows[-1]["round"] + 1
        rng = np.random.default_rng([cfg.seed, rnd])
        left = np.setdiff1d(pool, queried)
        if len(queried) < cfg.init or cfg.method == "random":
            k = cfg.init - len(queried) if len(queried) < cfg.init else min(cfg.per_round, cfg.queries - len(queried))
            new = rng.choice(left, size=k, replace=False).tolist()
        elif cfg.method == "evolution":
            sample = rng.choice(population, size=min(cfg.sample, len(population)), replace=False)
            parent = int(sample[np.argmax(space.val[sample])])
            kids = np.setdiff1d(space.neighbours(parent), queried)
            kids = kids if space.allowed is None else kids[space.allowed[kids]]
            new = [int(rng.choice(kids if len(kids) else left))]
        else:
            if encoded is None:
                from .batching import EncodedGraphs

                encoded = EncodedGraphs(space.graphs, space.vocab)
            scores, model = _predictor_scores(space, cfg, queried, encoded, settings, rnd, model)
            scores[queried] = -np.inf
            if space.allowed is not None:
                scores[~space.allowed] = -np.inf
            if cfg.acquisition == "mutation":
                scores = _local(space, scores, queried, cfg.parents)
            k = min(cfg.per_round, cfg.queries - len(queried))
            new = np.argsort(-scores, kind="stable")[:k].tolist()
        for idx in new:
            queried.append(int(idx))
            population = (population + [int(idx)])[-cfg.population:]
            best = max(queried, key=lambda i: (space.val[i], -i))
            rows.append({"query": len(queried), "index": int(idx), "val": float(space.val[idx]),
                         "test": float(space.test[idx]), "best_index": int(best), "best_val": float(space.val[best]),
                         "best_test": float(space.test[best]), "round": int(rnd),
                         "elapsed_s": time.perf_counter() - t0, **stamp,
                         **({} if space.latency is None else {"latency": float(space.latency[idx]),
                                                               "best_latency": float(space.latency[best])})})
        if path:
            _write_history(path, header, rows)
        if bar:
            bar.update(len(new))
            bar.set_postfix(best_test=f"{rows[-1]['best_test']:.2f}")
    if bar:
        bar.close()
    return rows


def _local(space: SearchSpace, scores: np.ndarray, queried: list[int], parents: int) -> np.ndarray:
    """``scores`` kept on the cells within two mutations of the ``parents`` best queried cells (by validation
    accuracy), lowered below every other cell elsewhere: the round queries the local candidates first."""
    top = sorted(queried, key=lambda i: (-space.val[i], i))[:parents]
    near: set[int] = set()
    for p in top:
        one = space.neighbours(p)
        near.update(one.tolist())
        for c in one:
            near.update(space.neighbours(int(c)).tolist())
    local = np.zeros(len(scores), dtype=bool)
    local[list(near)] = True
    finite = np.isfinite(scores)
    out = scores.copy()
    if (local & finite).any() and (~local & finite).any():  # elsewhere: below the lowest local candidate
        out[~local & finite] -= scores[finite].max() - scores[finite].min() + 1.0
    return out


def _predictor_scores(space: SearchSpace, cfg: SearchConfig, queried: list[int], encoded, settings: dict,
                      rnd: int, previous=None):
    """``(scores of every cell, the predictor)``: trained afresh on the cells queried so far, or (``warm_steps``)
    the previous round's predictor fine-tuned on them. A resumed search has no previous predictor and trains one
    afresh, so warm-started searches resume to the same queries only when stopped before their first round."""
    from .predictor import Predictor

    graphs, y = [space.graphs[i] for i in queried], space.val[queried]
    warm = cfg.warm_steps or (WARM_STEPS if cfg.method.endswith("-warm") else 0)
    if warm and previous is not None:
        p = previous.finetune(graphs, y, steps=warm, seed=cfg.seed * 1000 + rnd)
        return p.predict(encoded).astype(np.float64), p
    model = None
    if cfg.method == "gcn":
        from .baselines import GCNConfig

        model = GCNConfig()
    steps = {} if cfg.train_steps is None or "steps" in settings else {"steps": cfg.train_steps}
    preds = []
    for k in range(cfg.ensemble):  # member 0 is the single predictor of ensemble=1
        p = Predictor(network=model, settings={**settings, **steps, "seed": cfg.seed * 1000 + rnd + 100_000 * k},
                      vocab=space.vocab, progress=False).fit(graphs, y)
        preds.append(p.predict(encoded).astype(np.float64))
    if cfg.ensemble == 1:
        return preds[0], p
    return thompson_scores(np.stack(preds), np.random.default_rng([cfg.seed, rnd, 1])), p


def thompson_scores(preds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per cell from N(ensemble mean, ensemble std) of ``preds`` (members x cells), each member's
    predictions first standardised over the cells (the ranking losses leave each member its own scale)."""
    z = (preds - preds.mean(1, keepdims=True)) / np.maximum(preds.std(1, keepdims=True), 1e-12)
    return z.mean(0) + z.std(0, ddof=1) * rng.standard_normal(z.shape[1])


def queries_to_optimum(rows: list[dict], optimum: float) -> int | None:
    """The first query that evaluates a cell of the space's best test accuracy (None: not within the budget). On
    NB201 CIFAR-10 and CIFAR-100 that cell also has the best validation accuracy, so the search returns it from then
    on; on ImageNet16-120 it does not."""
    for r in rows:
        if r["test"] >= optimum - 1e-9:
            return r["query"]
    return None


def search_settings(pairs) -> dict:
    """``--set KEY=VALUE`` pairs of a search, typed, and checked against the default recipe (an unknown setting or
    a bad value is a one-line error before any data is read)."""
    from .recipes import DEFAULT_RECIPE, get_recipe, parse_settings, typed_settings

    settings = typed_settings(parse_settings(pairs))
    get_recipe(DEFAULT_RECIPE).with_settings(settings)
    return settings


def search_to_directory(space: SearchSpace, cfg: SearchConfig, out: str | os.PathLike, *, settings: dict | None = None,
                        names=None, progress: bool = True, command: str | None = None) -> dict:
    """Run (or resume) one search into the directory ``out`` (it exists), as ``nnformer search`` does: its history in
    ``out/history.jsonl`` (:func:`search`; a history of the same search there is resumed), under the directory's
    lock, then its result in ``out/result.json`` (written atomically).

    Args:
        space: the space searched (:func:`load_search_space`, :func:`latency_constrained_space`).
        cfg: the search.
        out: the directory.
        settings: recipe overrides for the predictor methods (:func:`search_settings`).
        names: every cell's name, indexed as the space (NB201's arch strings): the returned cell's is recorded as
            ``returned_arch`` (``None`` without).
        progress: a progress bar.
        command: the command line recorded.

    Returns:
        What ``result.json`` holds: the space's name, the config and settings; the returned cell (the best queried by
        validation accuracy): ``returned_index``, ``returned_arch``, ``returned_val``, ``returned_test``; the
        space's ``optimum_test`` and :func:`queries_to_optimum`; ``best_test_at`` (the best test accuracy returned
        after 25, 50, 100 and 150 queries, as far as the search went); ``seconds_this_invocation`` and the command;
        and, under a latency budget, ``constraint`` (:func:`constraint_report`).
    """
    import time

    from .io import atomic_write_json, exclusive_lock, remove_stale_temporaries

    out = Path(out)
    settings = dict(settings or {})
    t0 = time.perf_counter()
    with exclusive_lock(out, "search"):
        remove_stale_temporaries(out, whole_directory=True)
        rows = search(space, cfg, history=out / "history.jsonl", settings=settings, progress=progress)
    optimum = float(space.test.max())
    best = rows[-1]
    curve = {q: rows[q - 1]["best_test"] for q in (25, 50, 100, 150) if q <= len(rows)}
    arch = None if names is None else names[best["best_index"]]
    result = {"space": space.name, "config": dataclasses.asdict(cfg), "settings": settings,
              "returned_index": best["best_index"], "returned_arch": arch, "returned_val": best["best_val"],
              "returned_test": best["best_test"], "optimum_test": optimum,
              "queries_to_optimum": queries_to_optimum(rows, optimum), "best_test_at": curve,
              "seconds_this_invocation": time.perf_counter() - t0, "command": command}
    c = constraint_report(space, rows)
    if c:
        result["constraint"] = c
    atomic_write_json(out / "result.json", result, indent=2)
    return result
