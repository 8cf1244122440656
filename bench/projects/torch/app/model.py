"""The model: a small MLP over FEATURES inputs with two classes."""

import torch
from torch import nn

FEATURES = 16


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 2))


def device() -> torch.device:
    """The GPU when the container has one, else the CPU (the bench machines have none)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
