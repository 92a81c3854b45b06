"""ODIN: a quality head and a length head, so the length preference can be thrown away.

Chen et al. 2024 ("ODIN: Disentangled Reward Mitigates Hacking in RLHF", arXiv 2402.07319) put
two linear heads on the reward model's shared features: a quality head r_Q and a length head r_L.
During training the reward is r = r_Q + r_L (one Bradley-Terry loss on the sum), plus

* a length loss: -rho(r_L, L) + |rho(r_Q, L)|, with rho the Pearson correlation over the batch
  and L the response length, so the length head soaks up the length signal and the quality head
  is pushed to be uncorrelated with length;
* an orthogonality loss |w_Q . w_L| between the two heads' weight vectors.

At use time (the RL stage in the paper) only r_Q scores. Here the features are fixed (frozen
backbone or hashed text features), so the two heads are the whole trainable model, as in the
paper's heads on a shared backbone. The paper's abstract says the approach "almost eliminates the
reward correlation with length"; secondary summaries quote a Pearson correlation falling from 0.451
to about -0.03 at almost the same validation accuracy (Vicuna-7B, OpenAssistant data), which we did
not check against the paper itself.

ODIN makes the quality head uncorrelated with the *measured* length and guarantees nothing else:
when length mixes a real part (helpful detail) and a spurious one (filler), the head can reach zero
correlation by dropping the real part (chapter 08 measures this).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from rmcourse.bootstrap import as_numbers
from rmcourse.device import one_thread
from rmcourse.heads import PairFeatures, _check_pairs, _count
from rmcourse.validation import as_number

__all__ = ["pearson", "TwoHeadRM", "odin_loss", "train_odin", "OdinRun"]


def pearson(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of two 1-D tensors, differentiable (0 when either is constant)."""
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a 1-D torch.Tensor, got {type(v).__name__} "
                            "(torch.as_tensor(values, dtype=torch.float32) converts a list)")
        if not v.is_floating_point():
            raise TypeError(f"{name} must hold floats, got a {v.dtype} tensor (call .float() on it)")
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of equal length, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.numel() < 2:
        raise ValueError("a correlation needs at least 2 values")
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / (xc.norm() * yc.norm() + eps)


class TwoHeadRM(nn.Module):
    """Two linear heads on the same features: `quality(x)` and `length(x)`; `forward` = their sum."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        _count(in_dim, "in_dim")
        self.quality_head = nn.Linear(in_dim, 1)
        self.length_head = nn.Linear(in_dim, 1)

    def quality(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality_head(x).squeeze(-1)

    def length(self, x: torch.Tensor) -> torch.Tensor:
        return self.length_head(x).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality(x) + self.length(x)


def odin_loss(model: TwoHeadRM, chosen: torch.Tensor, rejected: torch.Tensor, chosen_length: torch.Tensor,
              rejected_length: torch.Tensor, length_coef: float = 1.0, ortho_coef: float = 1.0) -> dict:
    """ODIN's training loss on one batch of pairs; returns the total and its parts.

    total = BT(r_Q + r_L) + length_coef * (|rho(r_Q, L)| - rho(r_L, L)) + ortho_coef * |w_Q . w_L|,
    correlations over all 2B responses of the batch.
    """
    if not isinstance(model, TwoHeadRM):
        raise TypeError(f"model must be a TwoHeadRM (a quality and a length head), got "
                        f"{type(model).__name__}")
    for name, x in (("chosen", chosen), ("rejected", rejected), ("chosen_length", chosen_length),
                    ("rejected_length", rejected_length)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    width = model.quality_head.in_features
    if chosen.ndim != 2 or chosen.shape[1] != width:
        raise ValueError(f"chosen must have shape [pairs, {width}] (the heads read {width} features), "
                         f"got {tuple(chosen.shape)}")
    if chosen.shape != rejected.shape or chosen_length.shape != (chosen.shape[0],) \
            or rejected_length.shape != chosen_length.shape:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} need the "
                         f"same shape, and one length per pair each (got {tuple(chosen_length.shape)} "
                         f"and {tuple(rejected_length.shape)})")
    b = chosen.shape[0]
    x = torch.cat([chosen, rejected])
    q, ln = model.quality(x), model.length(x)
    lengths = torch.cat([chosen_length, rejected_length]).float()
    r = q + ln
    bt = -F.logsigmoid(r[:b] - r[b:]).mean()
    rho_q, rho_l = pearson(q, lengths), pearson(ln, lengths)
    # raw weights, as in the paper; RLHFlow's two-head code uses centred, normalised weights instead
    # (the raw product can also be made small by shrinking one head)
    ortho = (model.quality_head.weight * model.length_head.weight).sum().abs()
    total = bt + length_coef * (rho_q.abs() - rho_l) + ortho_coef * ortho
    return {"loss": total, "bt_loss": bt, "rho_quality": rho_q, "rho_length": rho_l, "ortho": ortho}


@dataclass
class OdinRun:
    model: TwoHeadRM
    history: pd.DataFrame


@one_thread  # tiny matrices: a second thread only adds waiting (see rmcourse.heads)
def train_odin(train: PairFeatures, chosen_length, rejected_length, *, epochs: int = 2,
               batch_size: int = 64, lr: float = 3e-3, length_coef: float = 1.0,
               ortho_coef: float = 1.0, seed: int = 0) -> OdinRun:
    """Train ODIN's two heads on pair features with AdamW; one history row per epoch.

    `chosen_length` / `rejected_length` hold one length per pair (words or tokens). With
    `length_coef=0` and `ortho_coef=0` this is a plain linear Bradley-Terry head on the sum.
    """
    _check_pairs(train, "train", dtype=torch.float32)
    for name, lengths in (("chosen_length", chosen_length), ("rejected_length", rejected_length)):
        # text or NaN would make every correlation, and so the loss, NaN (standardised lengths,
        # negative ones included, are fine: a correlation ignores shifts and scales)
        as_numbers(lengths, name, ndim=None, allow_empty=True)
    cl = torch.as_tensor(chosen_length, dtype=torch.float32)
    rl = torch.as_tensor(rejected_length, dtype=torch.float32)
    if cl.shape != (len(train),) or rl.shape != (len(train),):
        raise ValueError(f"chosen_length and rejected_length need one value per pair ({len(train)})")
    _count(epochs, "epochs")
    if _count(batch_size, "batch_size", low=-2 ** 62) < 2:
        raise ValueError("batch_size must be >= 2: the length loss is a correlation over the batch")
    if as_number(lr, "lr") <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if as_number(length_coef, "length_coef") < 0 or as_number(ortho_coef, "ortho_coef") < 0:
        raise ValueError("length_coef and ortho_coef must be >= 0")
    torch.manual_seed(seed)
    model = TwoHeadRM(train.chosen.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    n = len(train)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            parts = odin_loss(model, train.chosen[idx], train.rejected[idx], cl[idx], rl[idx],
                              length_coef, ortho_coef)
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            opt.step()
        with torch.no_grad():
            model.eval()
            parts = odin_loss(model, train.chosen, train.rejected, cl, rl, length_coef, ortho_coef)
            q = model.quality(torch.cat([train.chosen, train.rejected]))
            rows.append({"epoch": epoch, **{k: float(v) for k, v in parts.items()},
                         "quality_accuracy": float((q[:n] > q[n:]).float().mean())})
    model.eval()
    return OdinRun(model=model, history=pd.DataFrame(rows))
