"""Build a workload from its config: data, learner factory, timing model, optimum loss.

Seeds: every random choice derives from ``(seed, purpose[, rank])`` through
``numpy.random.SeedSequence(seed, spawn_key=...)``. The initial weights depend on the seed only,
so all replicas start from the same point (as data-parallel training needs); data order depends
on (seed, rank), so each node reads its own stream.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch
from torch import nn

from workloads.classifier import CNN, MLP
from workloads.config import LEARNERS, WorkloadConfig
from workloads.datasets import (
    contiguous_regions,
    dirichlet_label_partition,
    iid_partition,
    load_digits_split,
    load_text_tokens,
    stdlib_source_bytes,
    tokenize_text,
)
from workloads.devices import DeviceProfile, FixedRateProfile
from workloads.learner import Learner
from workloads.llama import Llama, LlamaConfig, StagedModel
from workloads.markov import MarkovLanguage, dialect, random_sparse_markov
from workloads.pipeline import PipelineLearner
from workloads.streams import (
    ArrayStream,
    BatchStream,
    MarkovStream,
    TextStream,
    array_held_out,
    markov_held_out,
    text_held_out,
)
from workloads.timing import (
    DTYPE_BYTES,
    TimingModel,
    dense_timing,
    llama_timing,
    preset_config,
    preset_names,
    preset_timing,
)
from workloads.timing_only import TimingOnlyLearner

TINY_LLAMA = dict(d_model=32, n_layers=6, n_heads=4)
"""The CI-size decoder: about 100k parameters at vocab 32."""
DEFAULT_LLAMA = dict(d_model=256, n_layers=8, n_heads=8)
"""The 'llama' learner's shape unless overridden (about 6.4M parameters at vocab 256)."""
DEFAULT_CLASSIFIER_WIDTH = 64
DEFAULT_MARKOV_VOCAB = 32


class Purpose(IntEnum):
    """Names of the independent random streams (spawn keys)."""

    MODEL = 0
    DATA = 1
    HELD_OUT = 2
    LANGUAGE = 3
    DIALECT = 4
    SPLIT = 5
    SHARDS = 6


def rng_for(seed: int, purpose: Purpose, *rest: int) -> np.random.Generator:
    """Return an independent numpy Generator for ``(seed, purpose, *rest)``."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(purpose, *rest)))
    )


def torch_generator_for(seed: int, purpose: Purpose, *rest: int) -> torch.Generator:
    """Return a CPU torch.Generator seeded from ``(seed, purpose, *rest)``."""
    ss = np.random.SeedSequence(seed, spawn_key=(purpose, *rest))
    return torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))


class Workload:
    """Learner factory, timing model and optimum loss of one configured workload."""

    def __init__(self, config: WorkloadConfig, *, num_replicas: int, seed: int) -> None:
        if num_replicas < 1:
            raise ValueError(f"num_replicas={num_replicas}: must be >= 1")
        if config.device == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                "workload.device='cuda': CUDA is not available to this torch "
                f"({torch.__version__}); use device='cpu'"
            )
        self.config = config
        self.num_replicas = num_replicas
        self.seed = seed
        self.device = torch.device(config.device)
        self.language: MarkovLanguage | None = None
        self.optimum_loss: float | None = None
        """Lowest achievable held-out loss in nats per token (entropy rate), if known."""
        self._setup_data()
        self._check_learner()
        self.timing: TimingModel = self._build_timing()
        """The model the clock charges for."""

    # ---- data ------------------------------------------------------------------------------

    def _setup_data(self) -> None:
        cfg, seed = self.config, self.seed
        if cfg.data == "synthetic-markov":
            self._require_shards(("iid", "dialects"))
            self.vocab = cfg.vocab or DEFAULT_MARKOV_VOCAB
            self.language = random_sparse_markov(
                self.vocab,
                branching=cfg.markov_branching,
                concentration=cfg.markov_concentration,
                rng=rng_for(seed, Purpose.LANGUAGE),
            )
            self.optimum_loss = self.language.entropy_rate()
            self.held_out = markov_held_out(
                self.language,
                batch=cfg.batch,
                seq=cfg.seq,
                num_batches=cfg.eval_batches,
                rng=rng_for(seed, Purpose.HELD_OUT),
            )
        elif cfg.data == "digits":
            self._require_shards(("iid", "dirichlet"))
            self.arrays = load_digits_split(
                held_out_fraction=cfg.held_out_fraction, rng=rng_for(seed, Purpose.SPLIT)
            )
            self.num_features = self.arrays.train_x.shape[1]
            self.vocab = self.arrays.num_classes
            shard_rng = rng_for(seed, Purpose.SHARDS)
            if cfg.shards == "iid":
                self.shards = iid_partition(len(self.arrays.train_y), self.num_replicas, shard_rng)
            else:
                self.shards = dirichlet_label_partition(
                    self.arrays.train_y, self.num_replicas, cfg.dirichlet_alpha, shard_rng
                )
            self.held_out = array_held_out(self.arrays.test_x, self.arrays.test_y, batch=cfg.batch)
        else:
            self._require_shards(("iid", "contiguous"))
            if cfg.data == "python-stdlib":
                text = tokenize_text(stdlib_source_bytes(), level=cfg.text_level)
            else:
                text = load_text_tokens(cfg.data.removeprefix("text:"), level=cfg.text_level)
            self.vocab = text.vocab
            split = int(round(len(text.tokens) * (1.0 - cfg.held_out_fraction)))
            self.train_tokens, held = text.tokens[:split], text.tokens[split:]
            self.held_out = text_held_out(
                held,
                batch=cfg.batch,
                seq=cfg.seq,
                num_batches=cfg.eval_batches,
                rng=rng_for(seed, Purpose.HELD_OUT),
            )
            n = len(self.train_tokens)
            self.regions = (
                [(0, n)] * self.num_replicas
                if cfg.shards == "iid"
                else contiguous_regions(n, self.num_replicas)
            )

    def _require_shards(self, allowed: tuple[str, ...]) -> None:
        if self.config.shards not in allowed:
            raise ValueError(
                f"workload.shards={self.config.shards!r}: data={self.config.data!r} allows "
                f"{list(allowed)}"
            )

    def make_stream(self, rank: int) -> BatchStream:
        """Return node ``rank``'s training stream (its shard, its own random order)."""
        if not 0 <= rank < self.num_replicas:
            raise ValueError(f"rank={rank}: must be in 0..{self.num_replicas - 1}")
        cfg, rng = self.config, rng_for(self.seed, Purpose.DATA, rank)
        if cfg.data == "synthetic-markov":
            assert self.language is not None
            language = self.language
            if cfg.shards == "dialects":
                language = dialect(
                    self.language,
                    mix=cfg.dialect_mix,
                    rng=rng_for(self.seed, Purpose.DIALECT, rank),
                )
            return MarkovStream(
                language, batch=cfg.batch, seq=cfg.seq, rng=rng, held_out=self.held_out
            )
        if cfg.data == "digits":
            return ArrayStream(
                self.arrays.train_x,
                self.arrays.train_y,
                self.shards[rank],
                batch=cfg.batch,
                rng=rng,
                held_out=self.held_out,
            )
        return TextStream(
            self.train_tokens,
            self.regions[rank],
            batch=cfg.batch,
            seq=cfg.seq,
            rng=rng,
            held_out=self.held_out,
        )

    # ---- models ----------------------------------------------------------------------------

    @property
    def is_language_model(self) -> bool:
        """Whether the learner is a decoder (as opposed to a classifier)."""
        return self.config.is_decoder

    def _check_learner(self) -> None:
        name = self.config.learner
        if name not in LEARNERS and name not in preset_names():
            raise ValueError(
                f"workload.learner={name!r}: allowed {list(LEARNERS) + preset_names()}"
            )
        sequence_data = self.config.data != "digits"
        if self.is_language_model != sequence_data:
            raise ValueError(
                f"workload.learner={name!r} does not fit data={self.config.data!r}: decoders "
                "need 'synthetic-markov', 'python-stdlib' or 'text:PATH', classifiers ('mlp', "
                "'cnn') need 'digits'"
            )

    def llama_config(self) -> LlamaConfig:
        """Shape of the decoder learner (vocab from the data)."""
        cfg = self.config
        if cfg.learner in preset_names():
            base = preset_config(cfg.learner).__dict__ | {"max_seq": max(cfg.seq, 16)}
        else:
            base = dict(TINY_LLAMA if cfg.learner == "tiny-llama" else DEFAULT_LLAMA)
            base["max_seq"] = cfg.seq
        for name in ("d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(cfg, name) is not None:
                base[name] = getattr(cfg, name)
        base["vocab"] = self.vocab
        return LlamaConfig(**base)

    def make_model(self) -> nn.Module:
        """Build a freshly initialised model (same weights for every call with this seed)."""
        gen = torch_generator_for(self.seed, Purpose.MODEL)
        if self.is_language_model:
            return Llama(self.llama_config(), generator=gen)
        width = self.config.d_model or DEFAULT_CLASSIFIER_WIDTH
        cls = MLP if self.config.learner == "mlp" else CNN
        return cls(
            in_features=self.num_features, num_classes=self.vocab, hidden=width, generator=gen
        )

    def make_learner(self, rank: int, *, timing_only: bool = False) -> Learner | TimingOnlyLearner:
        """Node ``rank``'s learner: the shared initial weights and its own data stream."""
        if timing_only:
            return TimingOnlyLearner(self.config, num_params=self.timing.num_params)
        return Learner(self.make_model(), self.make_stream(rank), self.config, device=self.device)

    def make_pipeline_learner(
        self,
        num_stages: int,
        *,
        rank: int = 0,
        head_stage: str = "first",
        embedding_stage: bool = False,
        timing_only: bool = False,
    ) -> PipelineLearner | TimingOnlyLearner:
        """Build a stage-split decoder learner reading node ``rank``'s data.

        ``head_stage='first'`` puts the final norm and head on stage 0 (SkipPipe: paths return
        to their stage-0 node); ``'last'`` puts them on stage S-1 (a classic pipeline).
        ``embedding_stage=True`` leaves stage 0 without blocks (CheckFree's layout).
        """
        if not self.is_language_model:
            raise ValueError(
                f"workload.learner={self.config.learner!r}: pipeline learners need a decoder"
            )
        if timing_only:
            return TimingOnlyLearner(
                self.config, num_params=self.timing.num_params, num_stages=num_stages
            )
        model = self.make_model()
        assert isinstance(model, Llama)
        staged = StagedModel(model, num_stages, head_stage=head_stage,
                             embedding_stage=embedding_stage)
        return PipelineLearner(staged, self.make_stream(rank), self.config, device=self.device)

    # ---- timing ----------------------------------------------------------------------------

    def step_flops(self) -> float:
        """Forward+backward FLOPs of one microbatch (config batch x seq) of the timed model."""
        return self.timing.step_flops(self.config.batch, self.config.seq)

    def step_seconds(self, device: DeviceProfile | FixedRateProfile) -> float:
        """Seconds of one microbatch's forward+backward of the timed model on ``device``."""
        return self.timing.step_seconds(device, self.config.batch, self.config.seq)

    def activation_bytes(self) -> int:
        """Bytes of one microbatch's activations at a stage boundary of the timed model."""
        return self.timing.activation_bytes(self.config.batch, self.config.seq)

    def _build_timing(self) -> TimingModel:
        cfg = self.config
        param_bytes = DTYPE_BYTES[cfg.param_dtype]
        act_bytes = DTYPE_BYTES[cfg.activation_dtype]
        if cfg.timing != "same":
            if cfg.timing not in preset_names():
                raise ValueError(
                    f"workload.timing={cfg.timing!r}: allowed {preset_names()} or 'same'"
                )
            return preset_timing(
                cfg.timing, bytes_per_param=param_bytes, bytes_per_activation=act_bytes
            )
        if self.is_language_model:
            return llama_timing(
                self.llama_config(),
                name=cfg.learner,
                bytes_per_param=param_bytes,
                bytes_per_activation=act_bytes,
            )
        model = self.make_model()
        num_params = sum(p.numel() for p in model.parameters())
        width = cfg.d_model or DEFAULT_CLASSIFIER_WIDTH
        if isinstance(model, MLP):
            fwd_flops = 2.0 * sum(m.weight.numel() for m in model.net if isinstance(m, nn.Linear))
            n_layers = 3
        else:
            assert isinstance(model, CNN)
            side = model.side
            fwd_flops = (
                2.0 * side * side * (model.conv1.weight.numel() + model.conv2.weight.numel())
            )
            fwd_flops += 2.0 * model.head.weight.numel()
            n_layers = 3
        return dense_timing(
            name=cfg.learner,
            num_params=num_params,
            fwd_flops_per_sample=fwd_flops,
            n_layers=n_layers,
            width=width,
            bytes_per_param=param_bytes,
        )


def build_workload(config: WorkloadConfig, *, num_replicas: int, seed: int) -> Workload:
    """Build the workload of ``config`` for ``num_replicas`` nodes from ``seed``."""
    return Workload(config, num_replicas=num_replicas, seed=seed)
