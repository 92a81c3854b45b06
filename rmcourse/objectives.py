"""Multi-objective reward models: ArmoRM's absolute ratings, verbosity decorrelation and gating.

ArmoRM (Wang et al. 2024, "Interpretable Preferences via Multi-Objective Reward Modeling and
Mixture-of-Experts", arXiv 2406.12845; code: RLHFlow/RLHF-Reward-Modeling, armo-rm/) builds a
reward in two stages on a FROZEN backbone:

1. **Regression per objective.** Absolute ratings (HelpSteer's helpfulness, correctness,
   verbosity, ..., BeaverTails' is_safe, 19 objectives in all) are regressed on the backbone's
   features with one linear layer: one predicted rating per objective.
2. **Gating.** A small MLP reads the *prompt's* features and outputs non-negative weights that
   sum to one (a softmax with a temperature, times a learned scale); the reward is the weighted sum
   of the objective predictions. Only the gate is trained, with the Bradley-Terry loss on
   preference pairs. Before mixing, every objective is **decorrelated from verbosity**:
   r_i' = r_i - lambda_i * r_verbosity, with lambda_i the smallest value on a grid for which the
   Spearman correlation of r_i' with r_verbosity on reference data drops below a threshold
   (`find_proper_verbosity_penalties` in the official stage-2 script); the verbosity objective
   itself is zeroed.

The preference world makes the ratings exact: `objective_ratings` reads them off a response's
hidden attributes (`OBJECTIVES`), and `GOLD_MIX` is the mixture of ratings that *is* the gold
reward, so a learner can compare what the gate learnt with the truth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from rmcourse.bootstrap import as_numbers
from rmcourse.heads import _count, _model_input
from rmcourse.validation import as_number

__all__ = [
    "OBJECTIVES",
    "GOLD_MIX",
    "ARMORM_PENALTY_GRID",
    "objective_ratings",
    "ratings_matrix",
    "ObjectiveHeads",
    "fit_objective_heads",
    "verbosity_penalties",
    "apply_verbosity_penalties",
    "GatingNetwork",
    "MultiObjectiveRM",
    "train_gating",
]

# The objectives a rater scores on an absolute scale, HelpSteer-style, each read off the world's
# hidden attributes: correctness (+1 right claim or answer, 0 no claim, -1 wrong), helpful detail
# (0..3 sentences), politeness (0/1), the refuse-or-comply decision (1 right, 0 wrong) and
# verbosity (filler sentences, 0 and up).
OBJECTIVES: tuple[str, ...] = ("correctness", "detail", "politeness", "refusal_decision", "verbosity")
_RANGES: dict[str, tuple[int, int]] = {"correctness": (-1, 1), "detail": (0, 3), "politeness": (0, 1),
                                       "refusal_decision": (0, 1), "verbosity": (0, 6)}


def _gold_mix() -> dict[str, float]:
    from rmcourse.world import GOLD_WEIGHTS

    # gold = sum_i GOLD_MIX[i] * rating_i + GOLD_MIX_OFFSET (mismatch = 1 - refusal_decision)
    return {"correctness": GOLD_WEIGHTS["correct"], "detail": GOLD_WEIGHTS["detail"],
            "politeness": GOLD_WEIGHTS["polite"], "refusal_decision": -GOLD_WEIGHTS["refusal_mismatch"],
            "verbosity": GOLD_WEIGHTS["padding"]}


GOLD_MIX: dict[str, float] = _gold_mix()

# The penalty grid of ArmoRM's stage-2 script (find_proper_verbosity_penalties).
ARMORM_PENALTY_GRID: tuple[float, ...] = (0, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3,
                                          0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
                                          0.9, 0.95)


def objective_ratings(attrs: Mapping, noise: float = 0.0, rng: np.random.Generator | None = None) -> dict[str, float]:
    """Absolute ratings of one response, one per objective in `OBJECTIVES`.

    `attrs` is a response's hidden attributes from `rmcourse.world` (correct, refuses, detail,
    polite, padding, should_refuse). With `noise` > 0 a sloppy rater replaces each rating, with
    that probability, by a uniformly random value of the objective's scale (needs `rng`).
    """
    if not isinstance(attrs, Mapping):
        raise TypeError(f"attrs must be a mapping of attribute -> value, got {type(attrs).__name__}")
    for key in ("correct", "refuses", "detail", "polite", "padding", "should_refuse"):
        if key not in attrs:
            raise ValueError(f"missing attribute {key!r}")
    from rmcourse.linear_reward import _check_attribute_values

    _check_attribute_values(attrs, "attrs")
    noise = as_number(noise, "noise")
    if not 0.0 <= noise <= 1.0:
        hint = " (a fraction, not a percentage)" if 1 < noise <= 100 else ""
        raise ValueError(f"noise must be a probability in [0, 1], got {noise}{hint}")
    if noise > 0 and rng is None:
        raise ValueError("noise > 0 needs an rng (numpy Generator) so the ratings are reproducible")
    if noise > 0 and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got "
                        f"{type(rng).__name__}")
    correct = attrs["correct"]
    out = {
        "correctness": 0.0 if correct is None else (1.0 if correct else -1.0),
        "detail": float(attrs["detail"]),
        "politeness": float(bool(attrs["polite"])),
        "refusal_decision": float(bool(attrs["refuses"]) == bool(attrs["should_refuse"])),
        "verbosity": float(attrs["padding"]),
    }
    if noise > 0:
        for name in OBJECTIVES:
            if rng.random() < noise:
                low, high = _RANGES[name]
                out[name] = float(rng.integers(low, high + 1))
    return out


def ratings_matrix(attrs_list: Sequence[Mapping], noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Float32 [N, len(OBJECTIVES)] ratings of many responses (seeded rater noise)."""
    if isinstance(attrs_list, (Mapping, str, bytes)) or not hasattr(attrs_list, "__iter__"):
        raise TypeError(f"attrs_list must be a list of attribute mappings, got {type(attrs_list).__name__}")
    rng = np.random.default_rng(seed)
    rows = []
    for i, a in enumerate(attrs_list):
        try:
            rows.append(objective_ratings(a, noise, rng))
        except (TypeError, ValueError) as err:
            raise type(err)(f"attrs_list[{i}]: {err}") from None
    if not rows:
        raise ValueError("attrs_list is empty")
    return torch.tensor([[r[name] for name in OBJECTIVES] for r in rows], dtype=torch.float32)


def _nonfinite(x: torch.Tensor, name: str, columns: Sequence[str] | None) -> None:
    bad = ~torch.isfinite(x.double())
    if bool(bad.any()):
        row, col = (int(v) for v in bad.nonzero()[0])
        where = f"column {columns[col]!r}" if columns is not None else f"column {col}"
        raise ValueError(f"{name} has a non-finite value ({float(x[row, col])}) in row {row}, {where}: "
                         "drop or fill that row first (a NaN makes every fitted weight NaN)")


# ---------------------------------------------------------------------------------------------
# Stage 1: one linear regression per objective on frozen features
# ---------------------------------------------------------------------------------------------


@dataclass
class ObjectiveHeads:
    """A linear layer from features to one predicted rating per objective."""

    weight: torch.Tensor  # [K, D]
    bias: torch.Tensor  # [K]
    names: tuple[str, ...] = OBJECTIVES

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted ratings [N, K] of a feature matrix [N, D]."""
        self._check(features)
        return features.float() @ self.weight.T + self.bias

    def _check(self, features: Any) -> None:
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"features must be a 2-D torch.Tensor [responses, features], got "
                            f"{type(features).__name__}")
        if features.ndim != 2:
            raise ValueError("features must be a 2-D tensor [responses, features]")
        if features.shape[1] != self.weight.shape[1]:
            raise ValueError(f"features have {features.shape[1]} columns, the heads expect {self.weight.shape[1]}")


def fit_objective_heads(features: torch.Tensor, ratings: torch.Tensor, l2: float = 1.0,
                        names: Sequence[str] = OBJECTIVES) -> ObjectiveHeads:
    """Ridge regression of each rating column on the features, in closed form.

    W = (Xc^T Xc + l2 * I)^-1 Xc^T Rc on centred X and R; the bias puts the means back. Solved in
    float64 (one D x D system shared by all objectives).
    """
    if isinstance(names, (str, bytes)) or not hasattr(names, "__len__"):
        raise TypeError(f"names must be a list of objective names, got {type(names).__name__} {names!r}")
    for name, x in (("features", features), ("ratings", ratings)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a 2-D torch.Tensor, got {type(x).__name__}")
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name} must hold real numbers, got a {x.dtype} tensor")
    if features.ndim != 2:
        raise ValueError("features must be a 2-D tensor [responses, features]")
    if ratings.ndim != 2:
        raise ValueError("ratings must be a 2-D tensor [responses, objectives]")
    if features.shape[0] != ratings.shape[0]:
        raise ValueError(f"{features.shape[0]} feature rows but {ratings.shape[0]} rating rows")
    if ratings.shape[1] != len(names):
        raise ValueError(f"ratings have {ratings.shape[1]} columns but {len(names)} objective names")
    # one NaN rating (a rater who skipped an item) would make every weight of the solve NaN
    _nonfinite(features, "features", None)
    _nonfinite(ratings, "ratings", names)
    l2 = as_number(l2, "l2")
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    x = features.double()
    r = ratings.double()
    x_mean, r_mean = x.mean(0), r.mean(0)
    xc, rc = x - x_mean, r - r_mean
    gram = xc.T @ xc + l2 * torch.eye(x.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(gram, xc.T @ rc)  # [D, K]
    bias = r_mean - x_mean @ w
    return ObjectiveHeads(weight=w.T.float().contiguous(), bias=bias.float(), names=tuple(names))


# ---------------------------------------------------------------------------------------------
# Verbosity decorrelation (ArmoRM stage 2)
# ---------------------------------------------------------------------------------------------


def verbosity_penalties(predicted: torch.Tensor, names: Sequence[str] = OBJECTIVES,
                        verbosity: str = "verbosity", threshold: float = 0.03,
                        grid: Sequence[float] = ARMORM_PENALTY_GRID) -> dict[str, float]:
    """ArmoRM's verbosity penalty per objective, found on reference predictions [N, K].

    For each objective i other than verbosity: the smallest lambda on `grid` whose
    r_i - lambda * r_verbosity has Spearman correlation <= `threshold` with r_verbosity; 1.0 when no
    grid value gets there (as in the official script). The verbosity objective's own penalty is
    1.0: it is removed from the mix.
    """
    from scipy.stats import spearmanr

    if isinstance(names, (str, bytes)):
        raise TypeError(f"names must be a list of objective names, got a single string {names!r}")
    names = tuple(names)
    if verbosity not in names:
        raise ValueError(f"no objective named {verbosity!r} in {names}")
    pred = as_numbers(predicted, "predicted", ndim=None)  # text or NaN: refused, not a silent 1.0
    if pred.ndim != 2 or pred.shape[1] != len(names):
        raise ValueError(f"predicted must have shape [N, {len(names)}], got {pred.shape}")
    threshold = as_number(threshold, "threshold")
    grid = as_numbers(grid, "grid").tolist()
    if pred.shape[0] < 3:
        raise ValueError("need at least 3 reference responses to measure a correlation")
    v = pred[:, names.index(verbosity)]
    if np.std(v) == 0:
        raise ValueError("the verbosity predictions are constant: nothing to decorrelate from")
    out = {verbosity: 1.0}
    for i, name in enumerate(names):
        if name == verbosity:
            continue
        out[name] = 1.0
        for lam in sorted(grid):
            corr = spearmanr(pred[:, i] - lam * v, v)[0]
            if corr <= threshold:
                out[name] = float(lam)
                break
    return {name: out[name] for name in names}


def apply_verbosity_penalties(predicted: torch.Tensor, penalties: Mapping[str, float],
                              names: Sequence[str] = OBJECTIVES, verbosity: str = "verbosity") -> torch.Tensor:
    """r_i' = r_i - penalty_i * r_verbosity for every objective (the verbosity column becomes
    r_v * (1 - penalty_v), i.e. 0 with ArmoRM's penalty of 1)."""
    if not isinstance(predicted, torch.Tensor) or predicted.ndim != 2 or not predicted.is_floating_point():
        got = (f"a {predicted.dtype} tensor of shape {tuple(predicted.shape)}"
               if isinstance(predicted, torch.Tensor) else type(predicted).__name__)
        raise TypeError(f"predicted must be a 2-D float torch.Tensor [N, objectives], got {got}")
    if not isinstance(penalties, Mapping):
        raise TypeError(f"penalties must be a dict objective -> penalty, got {type(penalties).__name__}")
    names = tuple(names)
    if set(penalties) != set(names):
        raise ValueError(f"penalties must name exactly the objectives {names}, got {sorted(penalties)}")
    if verbosity not in names:
        raise ValueError(f"no objective named {verbosity!r} in {names}")
    if predicted.shape[1] != len(names):
        raise ValueError(f"predicted has {predicted.shape[1]} columns but there are {len(names)} objectives")
    for n in names:
        as_number(penalties[n], f"penalties[{n!r}]")
    lam = torch.tensor([float(penalties[n]) for n in names], dtype=predicted.dtype)
    v = predicted[:, names.index(verbosity)]
    return predicted - v[:, None] * lam[None, :]


# ---------------------------------------------------------------------------------------------
# The gate and the combined reward model
# ---------------------------------------------------------------------------------------------


class GatingNetwork(nn.Module):
    """ArmoRM's gate: an MLP on prompt features -> softmax(logits / temperature) * scale.

    The weights are non-negative and sum to `scale` (a learned scalar, ArmoRM's `logit_scale`),
    so the reward is a convex mixture of the objectives, stretched by one number. ArmoRM's
    script uses temperature 10 and dropout 0.2 in the MLP; the default here is temperature 1 and no
    dropout (a temperature only rescales the logits, which the last layer can absorb, though it
    changes how fast the weights move under a given learning rate).
    """

    def __init__(self, in_dim: int, n_objectives: int, hidden: int = 64, n_hidden: int = 1,
                 temperature: float = 1.0, scale: float = 1.0) -> None:
        super().__init__()
        _count(in_dim, "in_dim")
        _count(n_objectives, "n_objectives")
        _count(n_hidden, "n_hidden", low=0)
        _count(hidden, "hidden", low=1 if n_hidden else 0)
        if not as_number(temperature, "temperature") > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        as_number(scale, "scale")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(n_hidden):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_objectives))
        self.net = nn.Sequential(*layers)
        self.temperature = float(temperature)
        self.logit_scale = nn.Parameter(torch.tensor([float(scale)]))

    def forward(self, prompt_features: torch.Tensor) -> torch.Tensor:
        """Mixing weights [N, K] (rows sum to the learned scale)."""
        return F.softmax(self.net(prompt_features) / self.temperature, dim=-1) * self.logit_scale


@dataclass
class MultiObjectiveRM:
    """Stage 1 heads + verbosity penalties + gate: reward = sum_i gate_i(prompt) * r_i'(prompt, response)."""

    heads: ObjectiveHeads
    penalties: dict[str, float]
    gate: GatingNetwork
    history: pd.DataFrame = field(default_factory=pd.DataFrame)

    def _prompt_features(self, prompt_features: Any) -> None:
        if not isinstance(prompt_features, torch.Tensor):
            raise TypeError(f"prompt_features must be a 2-D torch.Tensor [prompts, features], got "
                            f"{type(prompt_features).__name__}")
        width, _ = _model_input(self.gate)
        if prompt_features.ndim != 2 or prompt_features.shape[1] != width:
            raise ValueError(f"prompt_features must have shape [N, {width}] (the gate reads {width} "
                             f"prompt features), got {tuple(prompt_features.shape)}")

    def objectives(self, features: torch.Tensor) -> torch.Tensor:
        """Decorrelated objective predictions r' [N, K]."""
        return apply_verbosity_penalties(self.heads.predict(features), self.penalties, self.heads.names)

    @torch.no_grad()
    def weights(self, prompt_features: torch.Tensor) -> torch.Tensor:
        """The gate's mixing weights [N, K] for these prompts."""
        self._prompt_features(prompt_features)
        was = self.gate.training
        self.gate.eval()
        try:
            return self.gate(prompt_features.float())
        finally:
            self.gate.train(was)

    def score(self, features: torch.Tensor, prompt_features: torch.Tensor) -> torch.Tensor:
        """Rewards [N] of (prompt, response) rows."""
        self.heads._check(features)  # type and width, before the shapes are compared
        self._prompt_features(prompt_features)
        if features.shape[0] != prompt_features.shape[0]:
            raise ValueError(f"{features.shape[0]} response rows but {prompt_features.shape[0]} prompt rows")
        return (self.objectives(features) * self.weights(prompt_features)).sum(-1)

    def breakdown(self, features: torch.Tensor, prompt_features: torch.Tensor) -> pd.DataFrame:
        """One row per objective for ONE response: predicted rating, decorrelated rating, gate
        weight and contribution (weight * decorrelated rating); contributions sum to the reward."""
        self.heads._check(features)
        self._prompt_features(prompt_features)
        if features.shape[0] != 1 or prompt_features.shape[0] != 1:
            raise ValueError("breakdown explains one response: pass features of shape [1, D]")
        raw = self.heads.predict(features)[0]
        adj = self.objectives(features)[0]
        w = self.weights(prompt_features)[0]
        return pd.DataFrame({"objective": list(self.heads.names), "rating": raw.numpy(),
                             "decorrelated": adj.numpy(), "weight": w.numpy(),
                             "contribution": (w * adj).numpy()})


def train_gating(heads: ObjectiveHeads, penalties: Mapping[str, float], chosen: torch.Tensor,
                 rejected: torch.Tensor, prompt_features: torch.Tensor, *, hidden: int = 64,
                 n_hidden: int = 1, temperature: float = 1.0, epochs: int = 20, batch_size: int = 64,
                 lr: float = 3e-3, weight_decay: float = 0.0, seed: int = 0) -> MultiObjectiveRM:
    """Train ArmoRM's gate with the Bradley-Terry loss; the objective heads stay frozen.

    `chosen` / `rejected` are response features [N, D] of N pairs, `prompt_features` [N, P] the
    prompt features of each pair (both answers share the prompt, hence the gate weights).
    """
    if not isinstance(heads, ObjectiveHeads):
        raise TypeError(f"heads must be ObjectiveHeads (fit_objective_heads), got {type(heads).__name__}")
    for name, x in (("chosen", chosen), ("rejected", rejected), ("prompt_features", prompt_features)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a 2-D torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2:
            raise ValueError(f"{name} must be a 2-D tensor")
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name} must hold real numbers, got a {x.dtype} tensor")
        _nonfinite(x, name, None)  # a NaN feature makes the gate's loss NaN
    if not chosen.shape[0] == rejected.shape[0] == prompt_features.shape[0]:
        raise ValueError("chosen, rejected and prompt_features need one row per pair each")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    _count(batch_size, "batch_size")
    if not as_number(lr, "lr") > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if as_number(weight_decay, "weight_decay") < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    names = heads.names
    with torch.no_grad():
        rc = apply_verbosity_penalties(heads.predict(chosen), penalties, names)
        rr = apply_verbosity_penalties(heads.predict(rejected), penalties, names)
    diff = rc - rr  # the gate mixes objective differences: [N, K]
    torch.manual_seed(seed)
    gate = GatingNetwork(prompt_features.shape[1], len(names), hidden, n_hidden, temperature)
    opt = torch.optim.AdamW(gate.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = diff.shape[0]
    rows = []
    p = prompt_features.float()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen)
        gate.train()
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            margin = (gate(p[idx]) * diff[idx]).sum(-1)
            loss = -F.logsigmoid(margin).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            gate.eval()
            margin = (gate(p) * diff).sum(-1)
            rows.append({"epoch": epoch, "train_loss": float(-F.logsigmoid(margin).mean()),
                         "train_accuracy": float((margin > 0).float().mean()),
                         "scale": float(gate.logit_scale)})
    gate.eval()
    return MultiObjectiveRM(heads=heads, penalties=dict(penalties), gate=gate, history=pd.DataFrame(rows))
