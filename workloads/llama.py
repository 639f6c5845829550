"""A LLaMA-style decoder, small enough for a CPU, that can be cut into pipeline stages.

The model is the usual pre-norm decoder: token embedding, ``n_layers`` blocks of
``x + attn(rmsnorm(x))`` then ``x + swiglu(rmsnorm(x))``, a final RMSNorm and an untied output
head. Positions enter through rotary embeddings (RoPE), so there is no position table.

Shapes in comments: B batch, T sequence length, C ``d_model``, H heads, D head size, V vocab.

``split_into_stages`` copies a model into ``S`` :class:`Stage` modules of consecutive blocks, the
way pipeline nodes hold them. The embedding always lives in stage 0; the final norm and head
live in stage 0 (``head_stage="first"``, SkipPipe: a path returns to its stage-0 node for
de-embedding and loss) or in the last stage (``head_stage="last"``, a classic pipeline).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def llama_ffn_dim(d_model: int, multiple_of: int = 64) -> int:
    """Hidden size of the SwiGLU feed-forward: the smallest multiple of 64 strictly above 8C/3.

    This is the rule that reproduces every parameter count of the reference presets
    (``workloads/data/h100-llama-step-times.csv``).
    """
    return multiple_of * (int(8 * d_model / 3) // multiple_of + 1)


@dataclass(frozen=True, kw_only=True)
class LlamaConfig:
    """Shape of a LLaMA-style decoder."""

    vocab: int = 32
    """Vocabulary size V (tokens)."""
    d_model: int = 48
    """Residual width C."""
    n_layers: int = 4
    """Number of transformer blocks."""
    n_heads: int = 4
    """Attention heads H; must divide ``d_model``."""
    d_ff: int | None = None
    """SwiGLU hidden size; ``None`` means :func:`llama_ffn_dim` of ``d_model``."""
    max_seq: int = 256
    """Longest sequence the rotary tables cover (tokens)."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""

    def __post_init__(self) -> None:
        for name in ("vocab", "d_model", "n_layers", "n_heads", "max_seq"):
            if getattr(self, name) < 1:
                raise ValueError(f"LlamaConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"LlamaConfig.n_heads={self.n_heads}: must divide d_model={self.d_model} "
                "into an even head size"
            )

    @property
    def ffn_dim(self) -> int:
        """The SwiGLU hidden size actually used."""
        return self.d_ff if self.d_ff is not None else llama_ffn_dim(self.d_model)


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain (no bias, no mean subtraction)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise x (..., C) by its root mean square and apply the gain."""
        rms = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * rms * self.weight


def rope_tables(cfg: LlamaConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables of shape (max_seq, D/2) for rotary position embeddings."""
    head_dim = cfg.d_model // cfg.n_heads
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(cfg.max_seq).float(), inv_freq)  # (T_max, D/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, T, D) by position-dependent angles."""
    T = x.shape[-2]
    cos, sin = cos[:T], sin[:T]  # (T, D/2)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, T, D/2) each
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2)  # (B, H, T, D)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE, through ``scaled_dot_product_attention``."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.wq = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wv = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Attend causally: x (B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        H = self.n_heads
        q = self.wq(x).view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        k = self.wk(x).view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        v = self.wv(x).view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.wo(y)


class SwiGLU(nn.Module):
    """Gated feed-forward: w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate and project: x (B, T, C) -> (B, T, C)."""
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # (B, T, C)


class Block(nn.Module):
    """One pre-norm transformer block."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Apply attention and feed-forward with residuals: (B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.attn_norm(x), cos, sin)  # (B, T, C)
        return x + self.ffn(self.ffn_norm(x))  # (B, T, C)


class Llama(nn.Module):
    """The whole decoder: tokens (B, T) -> logits (B, T, V)."""

    def __init__(self, cfg: LlamaConfig, *, generator: torch.Generator) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        init_llama_weights(self, generator)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T) -> logits (B, T, V)."""
        x = self.embed(idx)  # (B, T, C)
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)  # (B, T, C)
        return self.head(self.norm(x))  # (B, T, V)


def init_llama_weights(model: nn.Module, generator: torch.Generator) -> None:
    """GPT-2 style init from ``generator``: N(0, 0.02), output projections scaled by 1/sqrt(2L)."""
    n_layers = model.cfg.n_layers
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            continue  # RMSNorm gains start at one
        std = 0.02 / math.sqrt(2 * n_layers) if name.endswith(("wo.weight", "w2.weight")) else 0.02
        with torch.no_grad():
            nn.init.normal_(p, mean=0.0, std=std, generator=generator)


# ----------------------------------------------------------------------------------------------
# Pipeline stages


def stage_layer_ranges(n_layers: int, num_stages: int, *,
                       embedding_stage: bool = False) -> list[range]:
    """Split ``n_layers`` consecutive blocks into ``num_stages`` near-equal ranges.

    The first ``n_layers % num_stages`` stages get one extra block. With ``embedding_stage``,
    stage 0 holds no block (only the embedding and head: CheckFree's layout, where that stage
    never fails) and the blocks are split over stages ``1 .. num_stages - 1``.
    """
    if embedding_stage:
        return [range(0, 0), *(range(r.start, r.stop) for r in
                               stage_layer_ranges(n_layers, num_stages - 1))]
    if not 1 <= num_stages <= n_layers:
        raise ValueError(f"num_stages={num_stages}: must be between 1 and n_layers={n_layers}")
    base, extra = divmod(n_layers, num_stages)
    ranges, start = [], 0
    for s in range(num_stages):
        size = base + (1 if s < extra else 0)
        ranges.append(range(start, start + size))
        start += size
    return ranges


class Stage(nn.Module):
    """Consecutive blocks held by one pipeline stage, plus the embedding and/or head it owns."""

    def __init__(
        self,
        blocks: list[Block],
        *,
        embed: nn.Embedding | None,
        norm: RMSNorm | None,
        head: nn.Linear | None,
        rope: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.embed = embed
        self.norm = norm
        self.head = head
        self.register_buffer("rope_cos", rope[0], persistent=False)
        self.register_buffer("rope_sin", rope[1], persistent=False)

    def embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T) -> activations (B, T, C); only the stage holding the embedding."""
        assert self.embed is not None, "this stage holds no embedding"
        return self.embed(idx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply this stage's blocks: activations (B, T, C) -> (B, T, C)."""
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the final norm and head: activations (B, T, C) -> logits (B, T, V)."""
        assert self.head is not None and self.norm is not None, "this stage holds no head"
        return self.head(self.norm(x))


class StagedModel(nn.Module):
    """A :class:`Llama` cut into stages that can be applied in any order.

    ``forward_path(idx, path)`` embeds on stage 0, applies the stages listed in ``path`` in that
    order (skipped stages are simply absent, swapped stages appear swapped) and applies the head
    on the stage that owns it. Autograd records exactly that path, so ``loss.backward()`` retraces
    it in reverse and fills gradients only of the stages that ran.
    """

    def __init__(self, model: Llama, num_stages: int, *, head_stage: str = "first",
                 embedding_stage: bool = False) -> None:
        super().__init__()
        if head_stage not in ("first", "last"):
            raise ValueError(f"head_stage={head_stage!r}: allowed 'first' or 'last'")
        self.cfg = model.cfg
        self.layer_ranges = stage_layer_ranges(model.cfg.n_layers, num_stages,
                                               embedding_stage=embedding_stage)
        self.head_index = 0 if head_stage == "first" else num_stages - 1
        src = copy.deepcopy(model)  # stages own copies, like separate nodes
        rope = (src.rope_cos, src.rope_sin)
        self.stages = nn.ModuleList(
            Stage(
                [src.blocks[i] for i in layers],
                embed=src.embed if s == 0 else None,
                norm=src.norm if s == self.head_index else None,
                head=src.head if s == self.head_index else None,
                rope=rope,
            )
            for s, layers in enumerate(self.layer_ranges)
        )

    @property
    def num_stages(self) -> int:
        """Number of stages S."""
        return len(self.stages)

    def check_path(self, path: list[int]) -> None:
        """Raise ValueError unless ``path`` starts at stage 0 and visits no stage twice."""
        if not path or path[0] != 0:
            raise ValueError(f"path={path}: must start at stage 0 (it holds the embedding)")
        if len(set(path)) != len(path) or not all(0 <= s < self.num_stages for s in path):
            raise ValueError(
                f"path={path}: stages must be distinct and in 0..{self.num_stages - 1}"
            )

    def forward_path(self, idx: torch.Tensor, path: list[int] | None = None) -> torch.Tensor:
        """Tokens (B, T) -> logits (B, T, V) through the stages in ``path`` (default: all)."""
        path = list(range(self.num_stages)) if path is None else list(path)
        self.check_path(path)
        x = self.stages[0].embed_tokens(idx)  # (B, T, C)
        for s in path:
            x = self.stages[s](x)  # (B, T, C)
        return self.stages[self.head_index].logits(x)  # (B, T, V)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T) -> logits (B, T, V) through every stage in order."""
        return self.forward_path(idx)
