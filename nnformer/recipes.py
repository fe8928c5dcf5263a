"""Training recipes: a network, a training configuration and a step budget, typed, frozen and named.

A :class:`Recipe` fixes a budget of optimizer steps rather than epochs (``epochs = ceil(steps / steps_per_epoch)``,
at least ``min_epochs``), so a run costs about the same at every training-set size, and validates ``evals`` times
per run. Tiers change settings from a training-set size on; :meth:`Recipe.resolve` applies them for one size, and
:meth:`Recipe.with_settings` applies flat ``key=value`` overrides (any field of the network's config, of
:class:`~nnformer.train.TrainConfig`, or ``steps``, ``min_epochs``, ``evals``, ``epochs``), checked against the
dataclasses. :class:`~nnformer.predictor.Predictor` is the one place that turns a recipe into a training run, and
it stores the resolved recipe in every checkpoint.

``scaled`` is the default; ``released`` is the authors' recipe (docs/method.md sections 5-6). How the recipes were
chosen, with the measurements: docs/recipe-study.md.

Example:
    >>> r = RECIPES["scaled"].resolve(781)
    >>> r.model.mlp_ratio, r.steps
    (2.0, 3000)
    >>> RECIPES["scaled"].with_settings({"dim": 64, "seed": 3}).model.dim
    64
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .errors import NNFormerError
from .model import NNFormerConfig
from .train import TrainConfig

# settings of the recipe itself, beside the fields of the network's config and of TrainConfig
RECIPE_KEYS = ("steps", "min_epochs", "evals", "epochs")


class RecipeError(NNFormerError, ValueError):
    """An unknown recipe, an unknown setting, or a value a setting does not accept."""


@dataclass(frozen=True)
class Tier:
    """Settings that apply from ``n_min`` training graphs on."""

    n_min: int
    settings: Mapping[str, Any]

    def __post_init__(self):
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))


@dataclass(frozen=True)
class Recipe:
    """A named training recipe.

    Args:
        name: the recipe's name (recorded in checkpoints and result files).
        model: the network's configuration (an ``NNFormerConfig``, or a baseline's ``GCNConfig`` / ``MLPConfig``).
        train: the training configuration; its ``epochs`` and ``eval_every`` are set by :meth:`configs` when the
            recipe has a step budget or an ``evals`` count.
        steps: optimizer-step budget (0: train ``min_epochs`` epochs).
        min_epochs: the least number of epochs.
        evals: validations per run (``eval_every = epochs // evals``); ``None`` keeps ``train.eval_every``.
        tiers: settings applied from a training-set size on, in order.
    """

    name: str
    model: Any = field(default_factory=NNFormerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    steps: int = 0
    min_epochs: int = 0
    evals: int | None = 12
    tiers: tuple[Tier, ...] = ()

    def __post_init__(self):
        for name, ok in (("steps", self.steps >= 0), ("min_epochs", self.min_epochs >= 0),
                         ("evals", self.evals is None or self.evals >= 1)):
            if not ok:
                raise RecipeError(f"{name} must be non-negative (evals: at least 1), got {getattr(self, name)!r}")
        if not self.steps and not self.min_epochs:
            raise RecipeError(f"recipe {self.name!r} trains for no steps and no epochs")

    def resolve(self, n_train: int) -> "Recipe":
        """This recipe for ``n_train`` training graphs: every tier with ``n_min <= n_train`` applied in order."""
        r = dataclasses.replace(self, tiers=())
        for t in self.tiers:
            if n_train >= t.n_min:
                r = r._apply(t.settings, tier=True)
        return r

    def with_settings(self, settings: Mapping[str, Any]) -> "Recipe":
        """A copy with flat ``key: value`` overrides applied (values may be strings, as typed on a command line).

        ``steps`` alone also sets ``min_epochs`` to 0, and ``epochs`` fixes the epoch count (no step budget);
        ``eval_every`` fixes the validation interval (no ``evals`` count). Tiers still apply afterwards, except to
        the keys set here."""
        if not settings:
            return self
        r = self._apply(settings, tier=False)
        tiers = tuple(Tier(t.n_min, {k: v for k, v in t.settings.items() if k not in settings and not
                                     (k == "steps" and "epochs" in settings)}) for t in self.tiers)
        return dataclasses.replace(r, tiers=tuple(t for t in tiers if t.settings))

    def with_model(self, model) -> "Recipe":
        """A copy training the network ``model`` (e.g. a baseline's config); the tiers keep only their training
        settings."""
        names = {f.name for f in dataclasses.fields(self.model)}
        tiers = tuple(Tier(t.n_min, {k: v for k, v in t.settings.items() if k not in names}) for t in self.tiers)
        return dataclasses.replace(self, model=model, tiers=tuple(t for t in tiers if t.settings))

    def _apply(self, settings: Mapping[str, Any], tier: bool) -> "Recipe":
        typed = typed_settings(settings, self.model)
        model_fields = {f.name for f in dataclasses.fields(self.model)}
        top = {k: v for k, v in typed.items() if k in RECIPE_KEYS}
        m = {k: v for k, v in typed.items() if k not in top and k in model_fields}
        t = {k: v for k, v in typed.items() if k not in top and k not in m}
        if not tier:
            if "epochs" in top:
                top.update(steps=0, min_epochs=top.pop("epochs"))
            elif "steps" in top and "min_epochs" not in top:
                top["min_epochs"] = 0
            if "eval_every" in t:
                top["evals"] = None
        try:
            return dataclasses.replace(self, model=dataclasses.replace(self.model, **m),
                                       train=dataclasses.replace(self.train, **t), **top)
        except (TypeError, ValueError) as e:
            raise RecipeError(str(e).splitlines()[0]) from None

    def epochs(self, steps_per_epoch: int) -> int:
        """Epochs that spend the step budget at ``steps_per_epoch`` batches an epoch (at least ``min_epochs``)."""
        if not self.steps:
            return self.min_epochs
        return max(self.min_epochs, math.ceil(self.steps / max(1, steps_per_epoch)))

    def configs(self, steps_per_epoch: int) -> tuple[Any, TrainConfig]:
        """The network's config and the :class:`TrainConfig` with ``epochs`` and ``eval_every`` filled in."""
        epochs = self.epochs(steps_per_epoch)
        every = self.train.eval_every if self.evals is None else max(1, epochs // self.evals)
        try:
            return self.model, dataclasses.replace(self.train, epochs=epochs, eval_every=every)
        except ValueError as e:
            raise RecipeError(str(e)) from None

    def to_dict(self) -> dict:
        return {"name": self.name, "model": dataclasses.asdict(self.model), "train": dataclasses.asdict(self.train),
                "steps": self.steps, "min_epochs": self.min_epochs, "evals": self.evals,
                "tiers": [[t.n_min, dict(t.settings)] for t in self.tiers]}


def typed_settings(settings: Mapping[str, Any], model=None) -> dict[str, Any]:
    """``settings`` with each value typed as its field: of the network config ``model`` (default
    :class:`NNFormerConfig`), of :class:`TrainConfig`, or a recipe key (``steps``, ``min_epochs``, ``evals``,
    ``epochs``: integers). An unknown key is a :class:`RecipeError` listing the known ones."""
    model_fields = {f.name: f for f in dataclasses.fields(model if model is not None else NNFormerConfig)}
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = {}
    for key, value in settings.items():
        if key in RECIPE_KEYS:  # before the fields: ``epochs`` is also a TrainConfig field, filled by configs()
            out[key] = _typed(key, value, "int")
        elif key in model_fields:
            out[key] = _typed(key, value, model_fields[key].type)
        elif key in train_fields:
            out[key] = _typed(key, value, train_fields[key].type)
        else:
            known = sorted({*model_fields, *train_fields, *RECIPE_KEYS})
            raise RecipeError(f"unknown setting {key!r}; settings: {', '.join(known)}")
    return out


def _typed(key: str, value: Any, kind) -> Any:
    """``value`` as the field's type; strings (from a command line) are parsed."""
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    kind = kind.replace(" | None", "")
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "float":
            v = float(value)
            if not math.isfinite(v):
                raise ValueError
            return v
        return str(value)
    except (TypeError, ValueError):
        what = "finite number" if kind == "float" else kind
        raise RecipeError(f"setting {key}={value!r}: not a valid {what}") from None


def parse_settings(items) -> dict[str, str]:
    """``["key=value", ...]`` (``--set``) -> ``{key: value}``; typed later, against the recipe's dataclasses."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE")
        out[key] = value.strip()
    return out


_EFFICIENT = dict(model=NNFormerConfig(n_layers=4, dim=96), train=TrainConfig(lr=2e-3, w_cons=0.0, bucket=False))
RECIPES: Mapping[str, Recipe] = MappingProxyType({
    # docs/method.md sections 5-6: 12 blocks, dim 160, lr 1e-4, 3000 epochs, batch 128, EMA 0.99, w_cons 1
    "released": Recipe("released", min_epochs=3000),
    # batches of equal-size graphs, as the released code makes them: at small N a step then holds only ~N/7 graphs
    "fast": Recipe("fast", NNFormerConfig(n_layers=4, dim=96), TrainConfig(lr=2e-3, w_cons=0.0), steps=3000,
                   min_epochs=60),
    # 4 blocks of dim 96, 20x the released lr, no consistency copy, batches of 128 graphs of mixed sizes (padded;
    # the masks keep padding out of every token's view), 1,500 steps at every N
    "efficient": Recipe("efficient", **_EFFICIENT, steps=1500),
    # the default: `efficient` below N=400; from N=400 a hidden layer of 2x dim (a step costs 0.64x) and a larger
    # budget, 1,875 steps (4 per graph at N=469), 3,000 from N=700: at small N neither change paid, at large N both
    "scaled": Recipe("scaled", **_EFFICIENT, steps=1500,
                     tiers=(Tier(400, {"mlp_ratio": 2.0, "steps": 1875}), Tier(700, {"steps": 3000}))),
    # whole networks (ONNX graphs of 20-300 operators): the `efficient` network with the hidden layer of `scaled`,
    # batches of 32 graphs of neighbouring sizes (a step over ~100-node graphs costs ~40x one over 8-node cells),
    # graphs above 256 nodes fewer a batch (32 x 256^2 attention cells at most: 32 graphs of 1,767 nodes took
    # 19 GB and were killed on a 24 GB host), 1,500 steps
    "networks": Recipe("networks", model=NNFormerConfig(n_layers=4, dim=96, mlp_ratio=2.0),
                       train=TrainConfig(lr=1e-3, w_cons=0.0, batch_size=32, bucket=False, size_sorted=True,
                                         max_cells=32 * 256 * 256),
                       steps=1500),
})
DEFAULT_RECIPE = "scaled"


def get_recipe(recipe: "str | Recipe") -> Recipe:
    """A recipe by name (or the recipe itself)."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise RecipeError(f"unknown recipe {recipe!r}; recipes: {', '.join(RECIPES)}")
    return RECIPES[recipe]
