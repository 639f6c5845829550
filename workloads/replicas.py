"""Step many data-parallel replicas at once with ``torch.func`` (opt-in fast path).

The R replicas' parameters are stacked along a new leading dimension (R, ...). One call of
``vmap(grad_and_value(loss))`` computes every replica's loss and gradient on its own batch, and
the optimizer (AdamW or SGD with momentum, the same formulas as ``torch.optim``) updates the
stacks in place. Replicas differ only in their data streams; each has its own clip.

This trades the per-replica Python and kernel-launch overhead of a loop for a few large kernels:
the reference measured 10x at 64 replicas and 17x at 256 on an H100
(``workloads/data/h100-batched-replicas.csv``); ``benchmarks/bench_replicas_vmap.py`` measures it
on the machine at hand. Results agree with a loop of :class:`~workloads.learner.Learner` to float
rounding, not bit for bit.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch.func import functional_call, grad_and_value, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from workloads.learner import cross_entropy
from workloads.schedule import lr_at


class ReplicaGroup:
    """R replicas of a workload's model, stepped together."""

    def __init__(self, workload, ranks: list[int]) -> None:  # noqa: ANN001 (avoid an import cycle)
        if not ranks:
            raise ValueError("ranks=[]: a replica group needs at least one rank")
        self.cfg = workload.config
        self.ranks = list(ranks)
        self.device = workload.device
        self.model = workload.make_model().to(self.device)
        self.streams = [workload.make_stream(r) for r in ranks]
        R = len(ranks)
        self.params = {
            name: p.detach().unsqueeze(0).repeat(R, *[1] * p.dim()).clone()
            for name, p in self.model.named_parameters()
        }  # each (R, ...)
        self.buffers = {name: b for name, b in self.model.named_buffers()}  # shared, not stacked
        self.moment1 = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.moment2 = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.step_count = 0

        def loss_fn(params, buffers, x, y):  # noqa: ANN001, ANN202
            logits = functional_call(self.model, (params, buffers), (x,))
            return cross_entropy(logits, y)

        self._grad_and_loss = vmap(grad_and_value(loss_fn), in_dims=(0, None, 0, 0))

    @property
    def num_replicas(self) -> int:
        """Number of replicas R."""
        return len(self.ranks)

    @property
    def lr(self) -> float:
        """Scheduled learning rate of the next step."""
        cfg = self.cfg
        return lr_at(
            self.step_count,
            lr=cfg.lr,
            warmup_steps=cfg.warmup_steps,
            total_steps=cfg.total_steps,
            min_lr_ratio=cfg.min_lr_ratio,
        )

    def compute_grads(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Every replica's gradient (stacked, (R, ...)) and loss (R,) on its next batch."""
        batches = [s.next_batch() for s in self.streams]
        x = torch.stack([b[0] for b in batches]).to(self.device)  # (R, B, ...)
        y = torch.stack([b[1] for b in batches]).to(self.device)  # (R, B, ...)
        # On CPU the fused attention kernel has no vmap batching rule (vmap would loop over
        # replicas); the math backend is made of batchable ops.
        ctx = (
            sdpa_kernel(SDPBackend.MATH) if self.device.type == "cpu" else contextlib.nullcontext()
        )
        with ctx:
            return self._grad_and_loss(self.params, self.buffers, x, y)

    @torch.no_grad()
    def apply_grads(self, grads: dict[str, torch.Tensor]) -> None:
        """Clip each replica's gradient and take one optimizer step on every replica."""
        cfg = self.cfg
        if cfg.grad_clip is not None:
            sq = sum(g.pow(2).flatten(1).sum(1) for g in grads.values())  # (R,)
            coef = (cfg.grad_clip / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            grads = {k: g * coef.view(-1, *[1] * (g.dim() - 1)) for k, g in grads.items()}
        lr = self.lr
        self.step_count += 1
        t = self.step_count
        for k, p in self.params.items():
            g, m = grads[k], self.moment1[k]
            if cfg.optimizer == "adamw":
                b1, b2 = cfg.adam_beta1, cfg.adam_beta2
                v = self.moment2[k]
                p.mul_(1.0 - lr * cfg.weight_decay)
                m.lerp_(g, 1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                denom = (v.sqrt() / math.sqrt(1.0 - b2**t)).add_(1e-8)
                p.addcdiv_(m, denom, value=-lr / (1.0 - b1**t))
            else:
                g = g + cfg.weight_decay * p if cfg.weight_decay else g
                if t == 1:
                    m.copy_(g)
                else:
                    m.mul_(cfg.momentum).add_(g)
                p.add_(m, alpha=-lr)

    def train_step(self) -> torch.Tensor:
        """One local step of every replica. Returns the losses (R,)."""
        grads, losses = self.compute_grads()
        self.apply_grads(grads)
        return losses.detach()

    def get_flat(self, replica: int) -> torch.Tensor:
        """Replica ``replica``'s parameters as a float32 1-D vector (layout of Learner.get_flat)."""
        return torch.cat([v[replica].reshape(-1).float().cpu() for v in self.params.values()])

    @torch.no_grad()
    def average_params(self) -> None:
        """Replace every replica's parameters by the replicas' mean (a synchronous all-reduce)."""
        for v in self.params.values():
            v.copy_(v.mean(0, keepdim=True).expand_as(v))
