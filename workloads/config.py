"""The workload section of a scenario: what trains, on what data, and what the clock charges."""

from __future__ import annotations

from dataclasses import dataclass

from dtsim_errors import FieldError

LEARNERS = ("tiny-llama", "llama", "mlp", "cnn")
"""Learner names; any timing preset name ('llama-125m', ...) also builds that shape for real."""
CLASSIFIERS = ("mlp", "cnn")
"""The learners that are classifiers, not decoders: a pipeline cannot split them into stages."""
OPTIMIZERS = ("adamw", "sgd")
SHARDS = ("iid", "dirichlet", "dialects", "contiguous")
DEVICES = ("cpu", "cuda")
DTYPES = ("fp32", "bf16", "fp16")
TEXT_LEVELS = ("byte", "char")
DATA_SETS = {
    "synthetic-markov": "a synthetic Markov language (known entropy rate)",
    "digits": "scikit-learn's 8x8 digits (bundled with scikit-learn)",
    "python-stdlib": "the interpreter's own standard-library source text",
}
"""Named data sets (besides 'text:PATH') with one line each for ``dtsim list``; none needs a
download."""
DATA = tuple(DATA_SETS)


@dataclass(frozen=True, kw_only=True)
class WorkloadConfig:
    """What trains (learner, data, optimizer) and what a step costs (timing model).

    Shard kinds by dataset: ``synthetic-markov`` takes 'iid' (one chain for all nodes) or
    'dialects' (each node its own perturbed chain); ``digits`` takes 'iid' or 'dirichlet'
    (label skew); ``text:PATH`` takes 'iid' (random windows of the whole file) or 'contiguous'
    (each node reads its own region of the file).
    """

    learner: str = "tiny-llama"
    """'tiny-llama' (~100k parameters), 'llama' (shape from the overrides below), 'mlp', 'cnn',
    or a preset name such as 'llama-125m' (that shape, built for real)."""
    timing: str = "same"
    """Preset name ('llama-125m', 'llama-350m', 'llama-1b', 'llama-3b', 'llama-8b') or 'same'
    (derive the timing model from the learner's own shape)."""
    data: str = "synthetic-markov"
    """'synthetic-markov', 'digits', 'python-stdlib' (Python's own standard-library source text,
    :data:`~workloads.datasets.STDLIB_MODULES`) or 'text:PATH' (a local file)."""
    batch: int = 16
    """Samples (sequences or images) per microbatch."""
    seq: int = 32
    """Tokens per sequence (language data; ignored by classifiers)."""
    lr: float = 3e-3
    """Peak learning rate (after warm-up)."""
    min_lr_ratio: float = 0.1
    """Cosine schedule floor as a fraction of ``lr``."""
    warmup_steps: int = 20
    """Linear warm-up steps from 0 to ``lr``."""
    total_steps: int | None = None
    """Steps at which the cosine decay reaches its floor; None: constant ``lr`` after warm-up."""
    optimizer: str = "adamw"
    """'adamw' (betas below) or 'sgd' (with ``momentum``)."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW) or L2 penalty (SGD)."""
    grad_clip: float | None = 1.0
    """Clip the gradient's global L2 norm to this; None: no clipping."""
    shards: str = "iid"
    """How data is split across nodes: 'iid', 'dirichlet', 'dialects' or 'contiguous'."""
    dirichlet_alpha: float = 0.5
    """Dirichlet concentration of label skew ('dirichlet' shards); small = more skew."""
    dialect_mix: float = 0.5
    """How far each node's dialect departs from the base chain ('dialects' shards), 0..1."""
    device: str = "cpu"
    """Where learners run: 'cpu' or 'cuda' (error if CUDA is not available)."""
    d_model: int | None = None
    """Model width override (llama learners: C; classifiers: hidden units/channels)."""
    n_layers: int | None = None
    """Number of transformer blocks override."""
    n_heads: int | None = None
    """Attention heads override."""
    d_ff: int | None = None
    """SwiGLU hidden size override."""
    vocab: int | None = None
    """Synthetic language vocabulary (text data sets its own vocabulary)."""
    markov_branching: int = 4
    """Successors per token of the synthetic chain."""
    markov_concentration: float = 1.0
    """Dirichlet concentration of the chain's successor weights (lower: lower entropy)."""
    text_level: str = "byte"
    """Tokenisation of text files: 'byte' (V = 256) or 'char'."""
    held_out_fraction: float = 0.1
    """Fraction of a finite dataset kept for evaluation (digits, text)."""
    eval_batches: int = 4
    """Held-out batches per ``eval_loss`` call."""
    param_dtype: str = "fp32"
    """Dtype the timing model charges for parameters and gradients on the wire."""
    activation_dtype: str = "fp32"
    """Dtype the timing model charges for activations between stages."""

    @property
    def is_decoder(self) -> bool:
        """Whether the learner is a decoder (splits into pipeline stages), not a classifier."""
        return self.learner not in CLASSIFIERS

    def __post_init__(self) -> None:
        def check(field: str, value: object, allowed: tuple) -> None:
            if value not in allowed:
                raise FieldError(field, f"allowed {list(allowed)} (got {value!r})")

        check("optimizer", self.optimizer, OPTIMIZERS)
        check("shards", self.shards, SHARDS)
        check("device", self.device, DEVICES)
        check("text_level", self.text_level, TEXT_LEVELS)
        check("param_dtype", self.param_dtype, DTYPES)
        check("activation_dtype", self.activation_dtype, DTYPES)
        if not (self.data in DATA or self.data.startswith("text:")):
            raise FieldError("data", f"allowed {', '.join(map(repr, DATA))}, 'text:PATH' "
                                     f"(got {self.data!r})")
        for name in ("batch", "seq", "eval_batches"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be >= 1 (got {getattr(self, name)})")
        if self.lr <= 0:
            raise FieldError("lr", f"must be > 0 (got {self.lr})")
        if self.warmup_steps < 0:
            raise FieldError("warmup_steps", f"must be >= 0 (got {self.warmup_steps})")
        if self.total_steps is not None and self.total_steps <= self.warmup_steps:
            raise FieldError("total_steps", f"must exceed warmup_steps={self.warmup_steps} "
                                            f"(or be None) (got {self.total_steps})")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise FieldError("grad_clip", f"must be > 0 or None (got {self.grad_clip})")
        if not 0.0 < self.held_out_fraction < 1.0:
            raise FieldError("held_out_fraction",
                             f"must be in (0, 1) (got {self.held_out_fraction})")
