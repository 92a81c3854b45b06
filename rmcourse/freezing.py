"""Freeze a backbone's embeddings and lowest layers: cheaper steps, sometimes at a cost in accuracy.

A frozen parameter needs no gradient and no AdamW state, and backpropagation can stop at the
first trainable layer, so the bottom of the network is run forward only. On 2 CPU cores,
freezing MiniLM's embeddings (half of its 22M parameters) and 2 of its 6 layers cut training
time by 21-24% (measured in float32; benchmarks/README.md); the reward head and the upper
layers, which move most in fine-tuning, still train. What it costs depends on the run: in chapter
03's CPU recipe (32 steps at lr 5e-4) accuracy was not measurably different, while in one epoch of
1024 preference-world pairs at lr 5e-5 it cost 1.6 points [0.7, 2.6] (3 seeds,
benchmarks/bench_vs_trl.py). Chapter 03's CPU recipe uses it; `python -m rmcourse.train` freezes
nothing unless asked (--freeze-layers); on a GPU the course trains everything.
"""
from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["backbone_parts", "freeze_lower_layers", "trainable_fraction"]


def backbone_parts(model: nn.Module) -> tuple[nn.Module, Any]:
    """(embedding module, list of transformer blocks) of an rmcourse or transformers model.

    Knows BERT-style encoders (`embeddings`, `encoder.layer`) and Llama-style decoders
    (`embed_tokens`, `layers`), which covers both bundled backbones.
    """
    hf = getattr(model, "hf", model)  # an rmcourse RewardModel wraps the transformers model
    if not isinstance(hf, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    base = getattr(hf, "base_model", hf)
    if hasattr(base, "embeddings") and hasattr(getattr(base, "encoder", None), "layer"):
        return base.embeddings, base.encoder.layer
    if hasattr(base, "embed_tokens") and hasattr(base, "layers"):
        return base.embed_tokens, base.layers
    raise ValueError(f"unknown architecture {type(hf).__name__}: expected a BERT-style encoder "
                     "(embeddings, encoder.layer) or a Llama-style decoder (embed_tokens, layers)")


def freeze_lower_layers(model: nn.Module, n_layers: int, embeddings: bool = True) -> int:
    """Freeze the embeddings (if `embeddings`) and the lowest `n_layers` blocks of `model`.

    Returns the number of scalar parameters now frozen. The reward head and the other layers
    stay trainable. Call before building the optimizer (`train_reward_model` does that).
    """
    if not isinstance(n_layers, int) or isinstance(n_layers, bool):
        raise TypeError(f"n_layers must be an int, got {n_layers!r}")
    if not isinstance(embeddings, bool):
        raise TypeError(f"embeddings must be True or False, got {embeddings!r}")
    embed, layers = backbone_parts(model)
    if not 0 <= n_layers <= len(layers):
        raise ValueError(f"n_layers must be in [0, {len(layers)}] for this model "
                         f"({len(layers)} layers), got {n_layers}")
    modules = ([embed] if embeddings else []) + list(layers[:n_layers])
    frozen = 0
    for module in modules:
        for param in module.parameters():
            if param.requires_grad:
                param.requires_grad_(False)
                frozen += param.numel()
    return frozen


def trainable_fraction(model: nn.Module) -> float:
    """Share of `model`'s scalar parameters that will receive gradients."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    total = sum(p.numel() for p in model.parameters())
    if total == 0:
        raise ValueError("model has no parameters")
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / total
