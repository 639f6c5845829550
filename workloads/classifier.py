"""Small classifiers for the digits dataset: an MLP and a CNN.

Inputs are flat feature vectors (B, F); the CNN reshapes them to (B, 1, side, side) images.
Outputs are class logits (B, K).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected classifier: F -> hidden -> hidden -> K with ReLU."""

    def __init__(
        self, *, in_features: int, num_classes: int, hidden: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
        init_classifier_weights(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, F) -> class logits (B, K)."""
        return self.net(x)  # (B, K)


class CNN(nn.Module):
    """Two 3x3 convolutions and a linear head, for small square grey images."""

    def __init__(
        self, *, in_features: int, num_classes: int, hidden: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        side = math.isqrt(in_features)
        if side * side != in_features:
            raise ValueError(f"in_features={in_features}: the CNN needs a square image")
        self.side = side
        self.conv1 = nn.Conv2d(1, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.head = nn.Linear(hidden * (side // 2) ** 2, num_classes)
        init_classifier_weights(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, F) -> class logits (B, K)."""
        B = x.shape[0]
        x = x.view(B, 1, self.side, self.side)  # (B, 1, S, S)
        x = torch.relu(self.conv1(x))  # (B, h, S, S)
        x = torch.relu(self.conv2(x))  # (B, h, S, S)
        x = nn.functional.max_pool2d(x, 2)  # (B, h, S/2, S/2)
        return self.head(x.flatten(1))  # (B, K)


def init_classifier_weights(model: nn.Module, generator: torch.Generator) -> None:
    """He-uniform weights and zero biases, drawn from ``generator``."""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("bias"):
                p.zero_()
            else:
                nn.init.kaiming_uniform_(p, a=math.sqrt(5), generator=generator)
