"""The methods a reproduction sweep compares, and the values the NN-Former paper publishes."""

from __future__ import annotations

# method -> (network, settings, label in the tables). "nnformer" methods set fields of the recipe's NNFormerConfig;
# "gcn" and "mlp" train a baseline network with the recipe's training; "zero-cost" methods rank by a proxy.
METHODS: dict[str, tuple[str, dict, str]] = {
    "nnformer": ("nnformer", {"mask_mode": "paper", "ffn_mode": "bgiffn"}, "NN-Former (paper masks)"),
    "nnformer-released": ("nnformer", {"mask_mode": "released", "ffn_mode": "bgiffn"},
                          "NN-Former (released-code masks)"),
    "transformer": ("nnformer", {"mask_mode": "global", "ffn_mode": "ffn"}, "plain transformer (global + FFN)"),
    "asma-ffn": ("nnformer", {"mask_mode": "paper", "ffn_mode": "ffn"}, "ASMA + FFN"),
    "global-bgiffn": ("nnformer", {"mask_mode": "global", "ffn_mode": "bgiffn"}, "global attention + BGIFFN"),
    "adjacency-bgiffn": ("nnformer", {"mask_mode": "adjacency", "ffn_mode": "bgiffn"},
                         "adjacency-only masks + BGIFFN"),
    "forward-giffn": ("nnformer", {"mask_mode": "paper", "ffn_mode": "forward"}, "ASMA + forward-only GIFFN"),
    "backward-giffn": ("nnformer", {"mask_mode": "paper", "ffn_mode": "backward"}, "ASMA + backward-only GIFFN"),
    "gcn": ("gcn", {}, "GCN, bidirectional (Neural Predictor style)"),
    "mlp": ("mlp", {}, "MLP on one-hot ops + adjacency"),
    "params": ("zero-cost", {"proxy": "params"}, "parameter count (zero-cost)"),
    "flops": ("zero-cost", {"proxy": "flops"}, "FLOPs (zero-cost)"),
}
# latency methods: the same networks learning the standardised log latency, and a linear regression of the log
# latency on the log of static costs (what a FLOPs-based estimate can do when fitted to the device)
_STATIC = {"graph_features": ("flops", "params")}  # log FLOPs and params into [CLS] (into the pooled nodes for a GCN)


def _static(method: str, label: str) -> tuple[str, dict, str]:
    """``method`` of :data:`METHODS` given the two static costs."""
    kind, over, _ = METHODS[method]
    return kind, {**over, **_STATIC}, label


LATENCY_METHODS: dict[str, tuple[str, dict, str]] = {
    "nnformer": METHODS["nnformer"],
    "nnformer-static": _static("nnformer", "NN-Former + log FLOPs and params into [CLS]"),
    "transformer": METHODS["transformer"],
    # NN-Former's ablations with the same two static costs, so that they compare with `nnformer-static`
    "transformer-static": _static("transformer", "plain transformer + log FLOPs and params into [CLS]"),
    "global-bgiffn-static": _static("global-bgiffn", "global attention + BGIFFN + log FLOPs and params into [CLS]"),
    "asma-ffn-static": _static("asma-ffn", "ASMA + FFN + log FLOPs and params into [CLS]"),
    "gcn": METHODS["gcn"],
    "gcn-static": _static("gcn", "GCN + log FLOPs and params added to the pooled nodes"),
    "flops-linear": ("linear", {"features": ("flops", "params")}, "linear regression on log FLOPs + log params"),
    # nn-Meter's and HW-NAS-Bench's idea: a network's latency as the sum of one cost per (layer, op)
    "layer-lut": ("lut", {}, "per-layer lookup table: least squares on one-hot (position, op), additive"),
}
# HELP's few-shot protocol (harness/fewshot.py): method -> (network, role, label). role: "meta" (meta-trained,
# hardware embedding), "meta-ft" (and fine-tuned), "scratch" (trained on the target's N samples only), "linear",
# "zero-cost"; one meta-training gives a network's -hw and -hw-ft methods
FEWSHOT_METHODS: dict[str, tuple[str, str, str]] = {
    "nnformer-hw": ("nnformer", "meta", "NN-Former, meta-trained, hardware embedding (no fine-tuning)"),
    "nnformer-hw-ft": ("nnformer", "meta-ft", "NN-Former, meta-trained, fine-tuned on the N samples"),
    "gcn-hw": ("gcn", "meta", "GCN, meta-trained, hardware embedding (no fine-tuning)"),
    "gcn-hw-ft": ("gcn", "meta-ft", "GCN, meta-trained, fine-tuned on the N samples"),
    "nnformer-static": ("nnformer", "scratch", "NN-Former + log FLOPs/params, trained on the N samples only"),
    "flops-linear": ("linear", "linear", "linear regression on log FLOPs + log params (N samples)"),
    "flops": ("zero-cost", "zero-cost", "FLOPs alone (no samples)"),
}
# --quick: the comparisons the paper's claims rest on (masks, vs a plain transformer, vs GNN / MLP / zero-cost), not
# the ablations, so that it fits in 15 minutes on 2 cores
QUICK_METHODS = ("nnformer", "nnformer-released", "transformer", "gcn", "mlp", "params", "flops")

# validations per run in a sweep (the CLI's `train` validates 12 times)
SWEEP_EVALS = 10

# Kendall's tau that the NN-Former paper reports (docs/method.md section 8), by space and N; a sanity range only where
# the data here differs from the paper's (NB201 labels from NATS-Bench exports, NB101 only a subset).
PAPER_TAU: dict[str, dict[int, float]] = {"nb201-cifar10": {156: 0.804, 1563: 0.890},
                                          "nb101": {100: 0.709, 4236: 0.877}}

# (method, rival, question) pairs that the report answers from the runs, when both are in the grid
QUESTIONS = (("nnformer", "nnformer-released", "Do the paper's sibling masks beat the released code's masks?"),
             ("nnformer", "transformer", "Is NN-Former (paper masks) at or above the plain transformer?"),
             ("nnformer", "gcn", "Is NN-Former (paper masks) at or above the GCN baseline?"),
             ("nnformer", "global-bgiffn", "Do the ASMA masks beat global attention (both with BGIFFN)?"),
             ("nnformer", "asma-ffn", "Does BGIFFN beat a plain FFN (both with ASMA masks)?"))


def method_table(task: str) -> dict[str, tuple[str, dict, str]]:
    return LATENCY_METHODS if task == "latency" else METHODS


def label(method: str) -> str:
    known = {m: v[2] for m, v in {**FEWSHOT_METHODS, **METHODS, **LATENCY_METHODS}.items()}
    return known.get(method, method)


def predictor_for(method: str, recipe: str, settings: dict, seed: int, max_nodes: int, task: str = "accuracy"):
    """The :class:`~nnformer.Predictor` that trains ``method`` in a sweep (not for zero-cost methods).

    ``settings`` override the recipe; those of the recipe's network (NN-Former) do not reach a baseline, which
    keeps its own network config and takes the recipe's training."""
    import dataclasses

    from ..baselines import GCNConfig, MLPConfig
    from ..model import NNFormerConfig
    from ..predictor import Predictor

    kind, over, _ = method_table(task)[method]
    over = {k: v for k, v in over.items() if k != "graph_features"}  # what the graphs carry, not a setting
    model = {"nnformer": None, "gcn": GCNConfig(), "mlp": MLPConfig(max_nodes=max_nodes)}[kind]
    if model is not None:
        network = {f.name for f in dataclasses.fields(NNFormerConfig)}
        settings = {k: v for k, v in settings.items() if k not in network}
    return Predictor(recipe, network=model, settings={"evals": SWEEP_EVALS, **settings, "seed": seed, **over},
                     task=task, progress=False)
