"""NN-Former: tokens -> ASMA (token mixer) -> BGIFFN (channel mixer) -> block -> encoder -> head.

Follows docs/method.md sections 2-5. Ablations and baselines are switches on these modules:
``mask_mode`` picks the attention masks and ``ffn_mode`` the channel mixer.

Example:
    >>> from nnformer.spaces.nb201 import arch_to_graph
    >>> from nnformer.batching import EncodedGraphs
    >>> g = arch_to_graph('|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|')
    >>> model = NNFormer(NNFormerConfig(n_layers=2, dim=32))
    >>> model(EncodedGraphs([g]).batch([0])).shape
    torch.Size([1])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .batching import GraphBatch
from .graph import asma_masks

MASK_MODES = ("paper", "released", "global", "adjacency")
FFN_MODES = ("bgiffn", "ffn", "forward", "backward")
DROPOUT_RNGS = ("pcg64", "mt19937")


@dataclass(frozen=True)
class NNFormerConfig:
    n_layers: int = 12
    dim: int = 160
    n_heads: int = 4  # split evenly over the four ASMA masks, so a multiple of 4
    mlp_ratio: float = 4.0  # hidden = 640 for dim 160, as released
    dropout: float = 0.1
    drop_path: float = 0.0
    n_op_types: int = 32  # one-hot width of op tokens (released: 32)
    n_depth: int = 32  # one-hot width of the [DEPTH] token; larger depths are clipped to n_depth - 1
    n_features: int = 0  # extra per-node features (e.g. ONNX attributes), projected and added to the op token
    feature_freqs: int = 4  # node features enter as log1p(x) and sin/cos of it at this many frequencies
    n_graph_features: int = 0  # features of the whole network (e.g. log FLOPs, params), projected and added to [CLS]
    mask_mode: str = "paper"  # paper | released | global | adjacency
    ffn_mode: str = "bgiffn"  # bgiffn | ffn (plain MLP) | forward (A only) | backward (A^T only)
    head_offset: float = 0.5  # the released head adds 0.5: accuracy targets live in [0, 1]
    # random stream of the dropout masks on CPU: pcg64 (NumPy, fast) | mt19937 (torch's generator, as on other devices;
    # it reproduces the archived `fast` runs); same drop rate and scale either way
    dropout_rng: str = "pcg64"

    def __post_init__(self):
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
        if self.ffn_mode not in FFN_MODES:
            raise ValueError(f"ffn_mode must be one of {FFN_MODES}, got {self.ffn_mode!r}")
        if self.dropout_rng not in DROPOUT_RNGS:
            raise ValueError(f"dropout_rng must be one of {DROPOUT_RNGS}, got {self.dropout_rng!r}")
        for name, ok, want in [("n_layers", self.n_layers >= 1, "at least 1"), ("dim", self.dim >= 1, "at least 1"),
                               ("mlp_ratio", self.mlp_ratio > 0, "positive"),
                               ("dropout", 0 <= self.dropout < 1, "in [0, 1)"),
                               ("drop_path", 0 <= self.drop_path < 1, "in [0, 1)"),
                               ("n_op_types", self.n_op_types >= 1, "at least 1"),
                               ("n_depth", self.n_depth >= 1, "at least 1"),
                               ("n_features", self.n_features >= 0, "non-negative"),
                               ("feature_freqs", self.feature_freqs >= 0, "non-negative"),
                               ("n_graph_features", self.n_graph_features >= 0, "non-negative")]:
            if not ok:
                raise ValueError(f"{name} must be {want}, got {getattr(self, name)!r}")
        if self.n_heads <= 0 or self.n_heads % 4:
            raise ValueError(f"n_heads must be a positive multiple of 4 (one group per ASMA mask), got {self.n_heads}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")

    @property
    def hidden(self) -> int:
        return int(self.mlp_ratio * self.dim)


def token_masks(batch: GraphBatch, mode: str) -> torch.Tensor:
    """``(B, 4, T, T)`` bool attention masks over the tokens ``[CLS, node_1..node_N, DEPTH]`` (``T = N + 2``).

    ``paper``: the four ASMA masks on the node graph; [CLS] and [DEPTH] see and are seen by every token.
    ``released``: the released code pads A with ones for [CLS]/[DEPTH] *before* the products, so heads 3-4 become
    global attention and heads 1-2 also see [CLS]/[DEPTH]. ``global``: all ones. ``adjacency``: I+A, I+A^T only.
    Padding nodes are never attended to (each sees only itself, which keeps the softmax finite).
    """
    adj = batch.adj
    B, N, _ = adj.shape
    T = N + 2
    valid = torch.ones(B, T, dtype=torch.bool, device=adj.device)
    valid[:, 1:N + 1] = torch.arange(N, device=adj.device) < batch.n_nodes[:, None]
    if mode == "released":
        a = torch.ones(B, T, T, dtype=adj.dtype, device=adj.device)
        a[:, 1:N + 1, 1:N + 1] = adj
        a = a * valid[:, :, None] * valid[:, None, :]
        m = asma_masks(a)
    elif mode == "global":
        m = torch.ones(B, 4, T, T, dtype=torch.bool, device=adj.device)
    else:
        node = asma_masks(adj)
        if mode == "adjacency":
            node = node[:, [0, 1, 0, 1]]
        m = torch.ones(B, 4, T, T, dtype=torch.bool, device=adj.device)
        m[:, :, 1:N + 1, 1:N + 1] = node
    eye = torch.eye(T, dtype=torch.bool, device=adj.device)
    return (m & valid[:, None, None, :]) | eye


def attention_bias(batch: GraphBatch, cfg: NNFormerConfig, dtype: torch.dtype) -> torch.Tensor:
    """``(B, n_heads, T, T)``: 0 where head ``h`` may attend, -inf where its mask (``h // (n_heads / 4)``) forbids."""
    masks = token_masks(batch, cfg.mask_mode)  # (B, 4, T, T)
    bias = torch.zeros(masks.shape, dtype=dtype, device=masks.device).masked_fill_(~masks, float("-inf"))
    return bias.repeat_interleave(cfg.n_heads // 4, dim=1) if cfg.n_heads > 4 else bias


def token_adjacency(batch: GraphBatch) -> torch.Tensor:
    """``(B, T, T)`` node adjacency embedded in the token sequence, zero for [CLS], [DEPTH] and padding (BGIFFN's A)."""
    B, N, _ = batch.adj.shape
    return F.pad(batch.adj, (1, 1, 1, 1))


class Dropout(nn.Module):
    """Inverted dropout drawing 16-bit random numbers.

    The drop rate is ``p`` rounded to a multiple of 1/65536 (0.1 -> 0.100006) and the kept values are scaled by the
    exact ``1 / (1 - p)`` of that rate. The mask is one tensor of ``{0, 1/(1-p)}``: one multiply forward and one
    backward.

    ``rng='pcg64'`` (CPU): the mask is built with NumPy from a PCG64 stream seeded by one draw from torch's
    generator, so ``torch.manual_seed`` fixes it and torch's saved RNG state is enough to resume. On a 2-core CPU
    this made a released-size training step about 55 ms (11%) faster than ``rng='mt19937'``: torch's Mersenne
    Twister, its bool compare and its ``where`` on bool masks are not vectorised; NumPy's compare and bool->float
    multiply are. ``rng='mt19937'`` draws with torch's generator (two 16-bit draws per 32-bit call), the stream other
    devices use (and the one of the archived ``fast`` runs).
    """

    def __init__(self, p: float, rng: str = "pcg64"):
        super().__init__()
        self.p, self.rng = p, rng
        self.threshold = round(p * 65536) - 32768  # keep where the int16 draw >= threshold
        self.scale = 1.0 / (1.0 - round(p * 65536) / 65536) if p < 1 else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * self._mask(x, relu=False)

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """``dropout(relu(x))`` as one mask multiply: the mask is 0 where ``x <= 0`` too.

        Same values and gradients as ReLU then dropout (and the same random draws), without the ReLU's own pass
        forward and backward.
        """
        if not self.training or self.p == 0.0:
            return F.relu(x)
        return x * self._mask(x, relu=True)

    def _mask(self, x: torch.Tensor, relu: bool) -> torch.Tensor:
        n = x.numel()
        if self.rng == "pcg64" and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            seed = int(torch.randint(0, 2 ** 62, (1,)).item())
            words = np.random.Generator(np.random.PCG64(seed)).integers(0, 2 ** 64 - 1, (n + 3) // 4, np.uint64,
                                                                          endpoint=True)
            keep = words.view(np.int16)[:n] >= self.threshold
            if relu:
                keep &= x.detach().reshape(-1).numpy() > 0
            mask = np.multiply(keep, self.scale, dtype=np.float32 if x.dtype == torch.float32 else np.float64)
            return torch.from_numpy(mask).view(x.shape)
        bits = torch.randint(-(2 ** 31), 2 ** 31 - 1, ((n + 1) // 2,), dtype=torch.int32, device=x.device)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= self.threshold
        if relu:
            keep &= x > 0
        return torch.where(keep, x.new_full((), self.scale), x.new_zeros(()))

    def extra_repr(self) -> str:
        return f"p={self.p}, rng={self.rng}"


class ASMA(nn.Module):
    """Adjacency-sibling multi-head attention: head ``h`` attends under mask ``h // (n_heads / 4)``.

    ``bias`` ``(B, n_heads, T, T)`` is the additive form of each head's mask (0 where allowed, -inf where masked),
    built once per forward pass and shared by every layer (``attention_bias``).
    """

    def __init__(self, cfg: NNFormerConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.dim // cfg.n_heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)
        self.proj = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.attn_drop = Dropout(cfg.dropout, cfg.dropout_rng)
        self.resid_drop = Dropout(cfg.dropout, cfg.dropout_rng)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, n_query: int | None = None) -> torch.Tensor:
        """``n_query``: compute outputs for the first ``n_query`` tokens only (keys and values use all tokens)."""
        B, T, C = x.shape
        # q, k, v as one contiguous (3, B, heads, T, head_dim) copy: both attention products then run as plain
        # batched matmuls on their operands, where strided views made matmul copy q, k and v one by one (and the
        # backward copy through a 6-d permute); about 3% of a released-size training step on a 2-core CPU
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        if n_query is not None:
            q, bias = q[:, :, :n_query], bias[:, :, :n_query]
        att = torch.matmul(q, k.transpose(-1, -2)).mul_(1.0 / math.sqrt(self.head_dim)).add_(bias)
        y = self.attn_drop(att.softmax(dim=-1)) @ v  # (B, heads, queries, head_dim)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, q.shape[2], C)))


class BGIFFN(nn.Module):
    """Bidirectional graph-isomorphism feed-forward (section 4)::

        [g1, g2] = split(W_g x);  h = W_1 x + concat(A g1, A^T g2);  out = W_2 ReLU(h)

    ``mode='ffn'`` drops the graph term (a plain transformer MLP); ``forward``/``backward`` keep only ``A g`` /
    ``A^T g`` with ``g = W_g x`` of full hidden width.
    """

    def __init__(self, cfg: NNFormerConfig):
        super().__init__()
        self.mode = cfg.ffn_mode
        self.fc1 = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.gate = nn.Linear(cfg.dim, cfg.hidden, bias=False) if self.mode != "ffn" else None
        self.fc2 = nn.Linear(cfg.hidden, cfg.dim, bias=False)
        self.drop1, self.drop2 = Dropout(cfg.dropout, cfg.dropout_rng), Dropout(cfg.dropout, cfg.dropout_rng)

    def forward(self, x: torch.Tensor, adj: torch.Tensor | None) -> torch.Tensor:
        """``adj=None``: tokens without graph neighbours (e.g. [CLS] alone), the graph term is zero."""
        if self.gate is None or adj is None:
            return self.drop2(self.fc2(self.drop1.after_relu(self.fc1(x))))
        W1, Wg, W2 = self.fc1.weight, self.gate.weight, self.fc2.weight
        if self.mode != "bgiffn":
            a = adj if self.mode == "forward" else adj.transpose(1, 2)
            u = F.linear(x, W1)
            h = torch.baddbmm(u, a.to(u.dtype), F.linear(x, Wg))
            return self.drop2(F.linear(self.drop1.after_relu(h), W2))
        # The two halves of the hidden layer are computed apart, each from its own rows of W_1 and W_g, and W_2 is
        # applied to each half: the same sums as concat + one matmul, without the (B, T, hidden) concat and add
        # (measured 1.5x faster on CPU for the released size).
        k = W1.shape[0] // 2
        # (in place: the GEMM outputs are fresh tensors that their backward does not need)
        # (under autocast the GEMM outputs are bf16/fp16 and in-place ops are not autocast: A takes their dtype.
        # Keep the order W_1[:k], W_g[:k], W_1[k:], W_g[k:]: autograd sums x's four gradients in reverse creation
        # order, and another order changes the last bits and, over a run, the trained predictor.)
        u1 = F.linear(x, W1[:k])
        adj = adj.to(u1.dtype)
        h1 = u1.baddbmm_(adj, F.linear(x, Wg[:k]))  # W_1 x + A g1
        h2 = F.linear(x, W1[k:]).baddbmm_(adj.transpose(1, 2), F.linear(x, Wg[k:]))  # W_1 x + A^T g2
        out = F.linear(self.drop1.after_relu(h1), W2[:, :k]) + F.linear(self.drop1.after_relu(h2), W2[:, k:])
        return self.drop2(out)


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Block(nn.Module):
    def __init__(self, cfg: NNFormerConfig, drop_path: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn, self.ffn = ASMA(cfg), BGIFFN(cfg)
        self.drop_path = DropPath(drop_path)

    def forward(self, x, bias, adj, cls_only: bool = False):
        """``cls_only``: update only token 0 ([CLS]); the last block needs nothing else for the prediction."""
        if cls_only:
            x = x[:, :1] + self.drop_path(self.attn(self.ln1(x), bias, n_query=1))
            return x + self.drop_path(self.ffn(self.ln2(x), None))  # [CLS] has no graph edges: A row is 0
        x = x + self.drop_path(self.attn(self.ln1(x), bias))
        x = x + self.drop_path(self.ffn(self.ln2(x), adj))
        return x


def number_encoding(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """Raw non-negative numbers (kernel sizes, channels, FLOPs; ``(..., k)``) as model inputs ``(..., k * (1 + 2 *
    freqs))``: ``z = log1p(x)`` (channels and FLOPs span decades) and ``sin``/``cos`` of ``z`` at frequencies
    ``2^i / 4`` (the sinusoidal encodings NAR-Former V2 and NNLP give attributes and shapes)."""
    z = torch.log1p(x.clamp(min=0))
    if not freqs:
        return z
    a = (z[..., None] * (2.0 ** torch.arange(freqs, device=x.device, dtype=z.dtype) / 4)).flatten(-2)
    return torch.cat([z, torch.sin(a), torch.cos(a)], dim=-1)


class NNFormer(nn.Module):
    """The NN-Former predictor: ``forward(batch) -> (B,)`` predictions."""

    def __init__(self, cfg: NNFormerConfig):
        super().__init__()
        self.cfg = cfg
        self.op_embed = nn.Linear(cfg.n_op_types, cfg.dim, bias=False)
        self.depth_embed = nn.Linear(cfg.n_depth, cfg.dim, bias=False)
        self.feat_embed = (nn.Linear(cfg.n_features * (1 + 2 * cfg.feature_freqs), cfg.dim, bias=False)
                           if cfg.n_features else None)
        self.graph_embed = nn.Linear(cfg.n_graph_features, cfg.dim, bias=False) if cfg.n_graph_features else None
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.ln_in = nn.LayerNorm(cfg.dim)
        rates = torch.linspace(0, cfg.drop_path, cfg.n_layers).tolist()
        self.blocks = nn.ModuleList(Block(cfg, r) for r in rates)
        self.ln_out = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, 1)
        self.reset_parameters()

    def reset_parameters(self):
        # trunc-normal(0.02) for Linear weights and [CLS], zero biases (released code)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                m.reset_parameters()
        nn.init.trunc_normal_(self.cls, std=0.02)

    def tokens(self, batch: GraphBatch) -> torch.Tensor:
        """``(B, N + 2, dim)``: [CLS], one token per node, [DEPTH], then LayerNorm. No positional encoding."""
        cfg = self.cfg
        # one-hot @ W is an embedding lookup. F.embedding, not indexing: indexing's backward (index_put_ with
        # accumulate) sums in a different order from run to run on 2+ CPU threads, so the same seed gave another tau;
        # embedding's backward is deterministic and, on one thread, bit-identical to the indexing it replaced.
        x = F.embedding(batch.ops, self.op_embed.weight.T)
        if self.feat_embed is not None:
            x = x + self.feat_embed(number_encoding(batch.features, cfg.feature_freqs))
        d = F.embedding(batch.depth.clamp(max=cfg.n_depth - 1), self.depth_embed.weight.T)[:, None]
        cls = self.cls.expand(x.shape[0], -1, -1)
        if self.graph_embed is not None:
            cls = cls + self.graph_embed(batch.graph_features)[:, None]
        x = torch.cat([cls, x, d], dim=1)
        return self.ln_in(x)

    def encode(self, batch: GraphBatch, cls_only: bool = False) -> torch.Tensor:
        """Final-LayerNorm token states ``(B, T, dim)`` (``(B, 1, dim)``, [CLS] only, with ``cls_only``)."""
        x = self.tokens(batch)
        bias = attention_bias(batch, self.cfg, x.dtype)  # shared by every layer
        adj = token_adjacency(batch).to(x.dtype)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, bias, adj, cls_only=cls_only and i == last)
        return self.ln_out(x)

    # Inference on CPU runs large batches in chunks of about this many tokens: the activations of a 2048-graph
    # NB201 batch (20,480 tokens, 100 MB per hidden layer) overflow the caches and the memory-bound steps between
    # the GEMMs slow down. On a 2-core CPU (released configuration, 2048 cells of 8 nodes, median of 6 passes in one
    # process) no chunking gave 704 archs/s, chunks of 10,240 / 5,120 / 2,560 / 1,280 tokens 825 / 1,025 / 1,154 /
    # 1,135. Same values: each graph is computed on its own.
    infer_chunk_tokens = 2560

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        n_tok = batch.ops.shape[1] + 2
        step = max(1, self.infer_chunk_tokens // n_tok)
        if not torch.is_grad_enabled() and batch.ops.device.type == "cpu" and len(batch) > step:
            return torch.cat([self._forward(batch.slice(i, i + step)) for i in range(0, len(batch), step)])
        return self._forward(batch)

    def _forward(self, batch: GraphBatch) -> torch.Tensor:
        # The head reads [CLS] only, so the last block is evaluated for [CLS] alone (same values, less work).
        return self.head(self.encode(batch, cls_only=True)[:, 0]).squeeze(-1) + self.cfg.head_offset


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weight matrices only, not on biases, LayerNorms, embeddings' [CLS] (released recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and name != "cls" else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of an NN-Former whose attention Linear layers use dynamic int8 quantization (CPU inference only).

    The token embeddings stay in float (they are lookup tables), and so does BGIFFN, which multiplies row blocks of
    its weight matrices directly rather than calling its Linear modules.
    """
    import copy

    q = copy.deepcopy(model).eval()
    names = {n for n, m in q.blocks.named_modules() if isinstance(m, nn.Linear) and ".attn." in f".{n}"}
    q.blocks = torch.ao.quantization.quantize_dynamic(q.blocks, names, dtype=torch.qint8)
    return q
