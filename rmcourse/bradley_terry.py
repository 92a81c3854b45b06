"""Bradley-Terry: from pairwise choices to one scalar strength (reward) per item.

Bradley & Terry (1952) model a comparison of items i and j as

    P(i beats j) = p_i / (p_i + p_j),   and with p = exp(r):   = sigmoid(r_i - r_j).

A reward model uses exactly this with r = r(x, y); Chatbot Arena (Chiang et al. 2024,
arXiv 2403.04132) uses it to rank chatbots from "battles". This module works at the item level
(a handful of named models), where everything is small enough to fit exactly with scipy.

Scale. Strengths are in log-odds ("nats"): a gap of 1 means the stronger item wins with
probability sigmoid(1) = 0.731. Only differences are identified, so fitted strengths are
centred to mean 0. `to_elo` converts to the Elo-like scale Chatbot Arena prints
(400 / ln 10 points per log-odds unit, centred on 1000).

Ties. Plain Bradley-Terry has no tie outcome. `fit_bt` counts a tie as half a win for each side
(the convention of Chatbot Arena's Elo code). Models with a tie parameter make ties likeliest
for small gaps, as real ties are: `davidson_probabilities` (Davidson 1970) and
`rao_kupper_probabilities` (Rao & Kupper 1967) give their win / tie / loss probabilities.

Rankings. `plackett_luce_nll` is the likelihood of a full ranking of K items (Luce 1959,
Plackett 1975): K = 2 is Bradley-Terry.

Battles are a pandas DataFrame with columns `model_a`, `model_b`, `winner`; `winner` is "a",
"b" or "tie" (Chatbot Arena's spellings "model_a", "model_b", "tie (bothbad)" are accepted too).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from rmcourse.validation import as_float_array

__all__ = [
    "ELO_PER_LOGIT",
    "WINNER_ALIASES",
    "bt_probability",
    "simulate_battles",
    "simulate_battles_from_matrix",
    "fit_bt",
    "bootstrap_leaderboard",
    "predicted_win_matrix",
    "empirical_win_matrix",
    "to_elo",
    "davidson_probabilities",
    "rao_kupper_probabilities",
    "plackett_luce_nll",
]

#: Elo points per log-odds unit: Elo uses base-10 odds over 400 points, so 400 / ln 10 = 173.7.
ELO_PER_LOGIT = 400.0 / math.log(10.0)

#: Accepted spellings of `winner`, mapped to the score of model_a (1 win, 0 loss, 0.5 tie).
WINNER_ALIASES: dict[str, float] = {
    "a": 1.0,
    "model_a": 1.0,
    "b": 0.0,
    "model_b": 0.0,
    "tie": 0.5,
    "tie (bothbad)": 0.5,
}

_COLUMNS = ("model_a", "model_b", "winner")


# ----------------------------------------------------------------------------------------------
# The probability
# ----------------------------------------------------------------------------------------------
def bt_probability(r1: Any, r2: Any, temperature: float = 1.0) -> Any:
    """P(item 1 beats item 2) = sigmoid((r1 - r2) / temperature), stable for any gap.

    Works on Python floats (returns a float), NumPy arrays (returns an array) and torch tensors
    (returns a tensor, differentiable). The naive exp(r1) / (exp(r1) + exp(r2)) overflows to
    inf/inf = nan once r exceeds ~709 (float64) or ~88 (float32); sigmoid of the difference does
    not, because only the difference matters.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    if isinstance(r1, torch.Tensor) or isinstance(r2, torch.Tensor):
        ref = r1 if isinstance(r1, torch.Tensor) else r2
        t1, t2 = (_as_float_tensor(r, ref, name) for r, name in ((r1, "r1"), (r2, "r2")))
        return torch.sigmoid((t1 - t2) / temperature)
    a, b = _as_float_array(r1, "r1"), _as_float_array(r2, "r2")
    p = expit((a - b) / temperature)
    if a.ndim == 0 and b.ndim == 0:
        return float(p)
    return p


def _as_float_tensor(value: Any, ref: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must hold numbers, got a tensor of dtype {value.dtype}")
        value = value if value.is_floating_point() else value.float()
        # A NaN reward would come out as a NaN probability: refuse it here, by position.
        bad = (~torch.isfinite(value.detach())).reshape(-1).nonzero()
        if bad.numel():
            i = int(bad[0])
            raise ValueError(f"{name} has a non-finite value ({value.reshape(-1)[i].item()}) "
                             f"at index {i}")
        return value
    dtype = ref.dtype if ref.is_floating_point() else torch.float32
    return torch.as_tensor(_as_float_array(value, name), dtype=dtype, device=ref.device)


def _as_float_array(value: Any, name: str) -> np.ndarray:
    """Numbers of any shape (a scalar too) as float64; strings, None, NaN and inf are refused."""
    return as_float_array(value, name, ndim=None)


# ----------------------------------------------------------------------------------------------
# Simulating battles
# ----------------------------------------------------------------------------------------------
def _strength_series(strengths: Mapping[str, float] | Sequence[float] | pd.Series) -> pd.Series:
    """Normalise dict / Series / sequence of strengths to a float Series indexed by model name."""
    if isinstance(strengths, pd.Series):
        series = strengths.astype(float)
    elif isinstance(strengths, Mapping):
        series = pd.Series({str(k): v for k, v in strengths.items()}, dtype=float)
    elif isinstance(strengths, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(
        strengths, (str, bytes)
    ):
        values = np.asarray(strengths, dtype=float)
        if values.ndim != 1:
            raise ValueError(f"strengths must be one-dimensional, got shape {values.shape}")
        series = pd.Series(values, index=[f"model_{i}" for i in range(len(values))])
    else:
        raise TypeError(
            "strengths must be a dict {model: strength}, a pandas Series or a sequence of "
            f"numbers, got {type(strengths).__name__}"
        )
    if len(series) < 2:
        raise ValueError(f"need at least 2 models to have battles, got {len(series)}")
    if series.index.has_duplicates:
        dup = series.index[series.index.duplicated()][0]
        raise ValueError(f"duplicate model name {dup!r} in strengths")
    if not np.isfinite(series.to_numpy()).all():
        bad = series.index[~np.isfinite(series.to_numpy())][0]
        raise ValueError(f"strength of model {bad!r} is not finite: {series[bad]}")
    series.index = series.index.map(str)
    return series


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return int(seed)


def _check_probability(value: Any, name: str, upper_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    ok = 0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0
    if not ok:
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return float(value)


def simulate_battles(
    strengths: Mapping[str, float] | Sequence[float] | pd.Series,
    n_battles: int,
    seed: int = 0,
    tie_prob: float = 0.0,
    temperature: float = 1.0,
) -> pd.DataFrame:
    """Sample arena battles whose outcomes follow Bradley-Terry on the given true strengths.

    Each battle draws an ordered pair of distinct models uniformly at random. With probability
    `tie_prob` the battle is a tie; otherwise model_a wins with probability
    sigmoid((s_a - s_b) / temperature). A sequence of strengths names the models model_0, ...

    Returns a DataFrame with columns model_a, model_b, winner ("a" | "b" | "tie"). How many ties
    were drawn is reported in `df.attrs["n_ties"]` (and the settings in `df.attrs`).
    """
    series = _strength_series(strengths)
    p = bt_probability(series.to_numpy()[:, None], series.to_numpy()[None, :], temperature)
    win_prob = pd.DataFrame(p, index=series.index, columns=series.index)
    battles = simulate_battles_from_matrix(win_prob, n_battles, seed, tie_prob)
    battles.attrs["temperature"] = float(temperature)
    battles.attrs["true_strengths"] = series.to_dict()
    return battles


def simulate_battles_from_matrix(
    win_prob: pd.DataFrame, n_battles: int, seed: int = 0, tie_prob: float = 0.0
) -> pd.DataFrame:
    """Sample battles from ANY table of win probabilities, transitive or not.

    `win_prob.loc[i, j]` is P(i beats j | no tie); it must satisfy P[i, j] + P[j, i] = 1. This is
    how to simulate preferences that Bradley-Terry cannot express, such as a
    rock-paper-scissors cycle. Same output as `simulate_battles`.
    """
    if not isinstance(win_prob, pd.DataFrame):
        raise TypeError(f"win_prob must be a pandas DataFrame, got {type(win_prob).__name__}")
    if list(win_prob.index) != list(win_prob.columns):
        raise ValueError("win_prob must be square with the same model names as index and columns")
    n_models = len(win_prob)
    if n_models < 2:
        raise ValueError(f"need at least 2 models to have battles, got {n_models}")
    if win_prob.index.has_duplicates:
        raise ValueError(f"duplicate model name {win_prob.index[win_prob.index.duplicated()][0]!r}")
    n_battles = _check_count(n_battles, "n_battles")
    seed = _check_seed(seed)
    tie_prob = _check_probability(tie_prob, "tie_prob", upper_open=True)
    p = win_prob.to_numpy(dtype=float)
    off = ~np.eye(n_models, dtype=bool)
    if not (np.isfinite(p[off]).all() and (p[off] >= 0).all() and (p[off] <= 1).all()):
        raise ValueError("win_prob must hold probabilities in [0, 1] off the diagonal")
    if not np.allclose((p + p.T)[off], 1.0, atol=1e-9):
        i, j = np.argwhere(off & ~np.isclose(p + p.T, 1.0, atol=1e-9))[0]
        names = win_prob.index
        raise ValueError(
            f"win_prob[{names[i]!r}, {names[j]!r}] + win_prob[{names[j]!r}, {names[i]!r}] = "
            f"{p[i, j] + p[j, i]:.4f}, must be 1"
        )

    rng = np.random.default_rng(seed)
    ia = rng.integers(n_models, size=n_battles)
    # Draw b from the other n-1 models: shift indices at or above a by one.
    ib = rng.integers(n_models - 1, size=n_battles)
    ib = ib + (ib >= ia)
    a_wins = rng.random(n_battles) < p[ia, ib]
    tie = rng.random(n_battles) < tie_prob
    winner = np.where(tie, "tie", np.where(a_wins, "a", "b"))
    names = np.asarray(win_prob.index, dtype=object).astype(str)
    battles = pd.DataFrame({"model_a": names[ia], "model_b": names[ib], "winner": winner})
    battles.attrs.update({"n_ties": int(tie.sum()), "tie_prob": tie_prob, "seed": seed})
    return battles


# ----------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------
_COUNT_COLUMNS = {"count", "counts", "n", "n_battles", "num_battles", "weight", "weights"}


def _encode(
    battles: pd.DataFrame, models: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Validate battles; return (model names, index of a, index of b, score of a in {0, .5, 1})."""
    if not isinstance(battles, pd.DataFrame):
        raise TypeError(f"battles must be a pandas DataFrame, got {type(battles).__name__}")
    for col in _COLUMNS:
        if col not in battles.columns:
            raise ValueError(f"missing column {col!r} in battles (need {', '.join(_COLUMNS)})")
    if len(battles) == 0:
        raise ValueError("battles is empty: nothing to fit")
    counted = [c for c in battles.columns if str(c).lower() in _COUNT_COLUMNS]
    if counted:
        # aggregated battles (one row per pairing with a count) would silently count once each
        col = counted[0]
        raise ValueError(f"battles has a {col!r} column, but each row is read as ONE battle; "
                         f"expand aggregated rows first: battles.loc[battles.index.repeat("
                         f"battles[{col!r}])].drop(columns={col!r})")
    for col in ("model_a", "model_b"):
        missing = battles[col].isna().to_numpy()
        if missing.any():
            raise ValueError(f"missing model name in column {col!r}, row {int(np.argmax(missing))}")
    a = battles["model_a"].astype(str).to_numpy()
    b = battles["model_b"].astype(str).to_numpy()
    same = a == b
    if same.any():
        row = int(np.argmax(same))
        raise ValueError(f"row {row}: model {a[row]!r} battles itself")
    winner = battles["winner"].astype(str).str.strip().str.lower()
    y = winner.map(WINNER_ALIASES).to_numpy(dtype=float)
    bad = np.isnan(y)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"unknown winner value {battles['winner'].iloc[row]!r} in row {row}; "
            f"expected one of {sorted(WINNER_ALIASES)}"
        )
    seen = pd.unique(np.concatenate([a, b]))
    if models is None:
        names = sorted(seen)
    else:
        if isinstance(models, (str, bytes)) or not isinstance(models, (Sequence, np.ndarray, pd.Index)):
            raise TypeError(f"models must be a list of model names, got {type(models).__name__}")
        names = [str(m) for m in models]
        if len(set(names)) != len(names):
            raise ValueError("models contains duplicate names")
        unknown = sorted(set(seen) - set(names))
        if unknown:
            raise ValueError(f"battles mention models not in `models`: {unknown}")
        absent = [m for m in names if m not in set(seen)]
        if absent:
            raise ValueError(
                f"model {absent[0]!r} has no battles: its strength is not identifiable"
            )
    if len(names) < 2:
        raise ValueError(f"need at least 2 models, got {names}")
    index = {m: i for i, m in enumerate(names)}
    ia = np.fromiter((index[m] for m in a), dtype=np.int64, count=len(a))
    ib = np.fromiter((index[m] for m in b), dtype=np.int64, count=len(b))
    return names, ia, ib, y


def _aggregate(n_models: int, ia: np.ndarray, ib: np.ndarray, y: np.ndarray, weights=None):
    """Collapse battles to one row per ordered pair: (i, j, games, score of i)."""
    code = ia * n_models + ib
    games = np.bincount(code, weights=weights, minlength=n_models * n_models)
    score = np.bincount(code, weights=y if weights is None else y * weights,
                        minlength=n_models * n_models)
    keep = np.flatnonzero(games)
    return keep // n_models, keep % n_models, games[keep], score[keep]


def _check_identifiable(names: list[str], i, j, games, score, l2: float) -> None:
    n = len(names)
    adjacency = coo_matrix((np.ones_like(games), (i, j)), shape=(n, n))
    n_parts, labels = connected_components(adjacency, directed=True, connection="weak")
    if n_parts > 1:
        groups = [[names[k] for k in np.flatnonzero(labels == c)] for c in range(n_parts)]
        raise ValueError(
            "the battles split the models into groups that never meet, so their strengths "
            f"cannot be compared: {groups}"
        )
    if l2 == 0:
        # The MLE exists iff every model can be reached from every other along "beat" edges
        # (Ford 1957); otherwise some strength runs off to +-infinity.
        beat_i = score > 0  # i scored against j
        beat_j = score < games  # j scored against i
        rows = np.concatenate([i[beat_i], j[beat_j]])
        cols = np.concatenate([j[beat_i], i[beat_j]])
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        n_strong, _ = connected_components(graph, directed=True, connection="strong")
        if n_strong > 1:
            raise ValueError(
                "with l2=0 the maximum-likelihood strengths do not exist: some group of models "
                "never loses (or never wins) against the rest, so its strength runs off to "
                "infinity. Pass l2 > 0 (e.g. 1e-3)."
            )


def _fit_arrays(n_models: int, i, j, games, score, l2: float, start=None) -> np.ndarray:
    n_games = games.sum()
    eye = np.eye(n_models)

    def objective(s: np.ndarray) -> tuple[float, np.ndarray]:
        d = s[i] - s[j]
        # -log sigmoid(d) = logaddexp(0, -d): finite for any d.
        nll = score @ np.logaddexp(0.0, -d) + (games - score) @ np.logaddexp(0.0, d)
        g_d = games * expit(d) - score  # d(nll)/d(d)
        grad = np.bincount(i, g_d, minlength=n_models) - np.bincount(j, g_d, minlength=n_models)
        # Dividing by the number of games keeps the objective O(1) for the optimiser.
        return (nll + l2 * s @ s) / n_games, (grad + 2 * l2 * s) / n_games

    def hessian(s: np.ndarray) -> np.ndarray:
        d = s[i] - s[j]
        w = games * expit(d) * expit(-d)
        h = np.zeros((n_models, n_models))
        np.add.at(h, (i, j), -w)
        np.add.at(h, (j, i), -w)
        h[np.diag_indices(n_models)] = -h.sum(axis=1)  # a weighted graph Laplacian
        return (h + 2 * l2 * eye) / n_games

    # The problem is convex and small (one parameter per model), so a trust-region Newton method
    # with the exact Hessian converges in a handful of steps.
    x0 = np.zeros(n_models) if start is None else start
    result = minimize(objective, x0, jac=True, hess=hessian, method="trust-exact",
                      options={"gtol": 1e-10, "maxiter": 500})
    grad_norm = float(np.abs(objective(result.x)[1]).max())
    if not result.success and grad_norm > 1e-7:
        warnings.warn(f"fit_bt did not converge: {result.message} (|grad| = {grad_norm:.2e})",
                      RuntimeWarning, stacklevel=3)
    return result.x - result.x.mean()


def fit_bt(
    battles: pd.DataFrame, l2: float = 1e-3, models: Sequence[str] | None = None
) -> pd.Series:
    """Maximum-likelihood Bradley-Terry strengths (log-odds scale, mean 0) from battles.

    Minimises  sum_battles -[y log sigmoid(s_a - s_b) + (1 - y) log sigmoid(s_b - s_a)]
    + l2 * ||s||^2  with `scipy.optimize.minimize` (trust-region Newton, analytic gradient and
    Hessian), where y is 1 if model_a won,
    0 if model_b won and 0.5 for a tie (a tie is half a win for each side). The small L2 term is
    a Gaussian prior that keeps strengths finite when a model never loses; its gradient also
    forces mean(s) = 0, and the result is centred anyway because only differences are
    identified. Use `to_elo` for the Elo-like arena scale.

    `models` fixes the set and order of models (each must have at least one battle).
    Returns a Series named "strength" indexed by model, sorted strongest first.
    """
    if isinstance(l2, bool) or not isinstance(l2, (int, float)):
        raise TypeError(f"l2 must be a number, got {type(l2).__name__}")
    if not (l2 >= 0 and math.isfinite(l2)):
        raise ValueError(f"l2 must be >= 0 and finite, got {l2}")
    names, ia, ib, y = _encode(battles, models)
    i, j, games, score = _aggregate(len(names), ia, ib, y)
    _check_identifiable(names, i, j, games, score, float(l2))
    s = _fit_arrays(len(names), i, j, games, score, float(l2))
    out = pd.Series(s, index=pd.Index(names, name="model"), name="strength")
    return out.sort_values(ascending=False, kind="stable")


def bootstrap_leaderboard(
    battles: pd.DataFrame,
    n_boot: int = 100,
    seed: int = 0,
    l2: float = 1e-3,
    ci: float = 0.95,
    progress: bool = False,
) -> pd.DataFrame:
    """An arena-style leaderboard: BT strengths with bootstrap confidence intervals.

    Refits `fit_bt` on `n_boot` resamples of the battles (rows drawn with replacement) and
    reports percentile intervals. Columns: model, strength (fit on all battles), ci_low,
    ci_high, rank (1 = strongest by point estimate), arena_rank (1 + number of models whose
    ci_low is above this model's ci_high, so statistically tied models share a rank, as on
    Chatbot Arena), n_battles. Sorted strongest first.
    """
    n_boot = _check_count(n_boot, "n_boot")
    seed = _check_seed(seed)
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0 < ci < 1:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")
    point = fit_bt(battles, l2=l2)  # validates battles and l2
    names, ia, ib, y = _encode(battles)
    n = len(names)
    rng = np.random.default_rng(seed)
    start = point.reindex(names).to_numpy()
    draws = np.empty((n_boot, n))
    iterator = range(n_boot)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="bootstrap")
    for k in iterator:
        # Multinomial counts per battle = resampling rows with replacement, without copying.
        counts = rng.multinomial(len(ia), np.full(len(ia), 1.0 / len(ia)))
        i, j, games, score = _aggregate(n, ia, ib, y, weights=counts.astype(float))
        keep = games > 0
        i, j, games, score = i[keep], j[keep], games[keep], score[keep]
        played = np.bincount(np.concatenate([i, j]), minlength=n) > 0
        if not played.all():
            raise ValueError(
                f"bootstrap resample {k} has no battle for model {names[int(np.argmin(played))]!r}"
                ": too few battles for a bootstrap"
            )
        _check_identifiable(names, i, j, games, score, float(l2))
        # Warm start from the full-data fit: a resample's optimum is close to it.
        draws[k] = _fit_arrays(n, i, j, games, score, float(l2), start=start)
    alpha = (1 - ci) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha], axis=0)
    n_played = np.bincount(np.concatenate([ia, ib]), minlength=n)
    board = pd.DataFrame({
        "model": names,
        "strength": point.reindex(names).to_numpy(),
        "ci_low": low,
        "ci_high": high,
        "n_battles": n_played,
    })
    board = board.sort_values("strength", ascending=False, kind="stable").reset_index(drop=True)
    board.insert(4, "rank", np.arange(1, n + 1))
    better = board["ci_low"].to_numpy()[None, :] > board["ci_high"].to_numpy()[:, None]
    board.insert(5, "arena_rank", 1 + better.sum(axis=1))
    board.attrs.update({"n_boot": n_boot, "ci": ci, "seed": seed, "l2": l2})
    return board


# ----------------------------------------------------------------------------------------------
# Win matrices and the Elo scale
# ----------------------------------------------------------------------------------------------
def predicted_win_matrix(strengths: Mapping[str, float] | pd.Series) -> pd.DataFrame:
    """The Bradley-Terry win-probability table: entry [i, j] = sigmoid(s_i - s_j).

    The diagonal is 0.5. Every BT table is transitive: if P(i>j) > 0.5 and P(j>k) > 0.5 then
    P(i>k) > 0.5.
    """
    series = _strength_series(strengths)
    s = series.to_numpy()
    p = bt_probability(s[:, None], s[None, :])
    return pd.DataFrame(p, index=series.index, columns=series.index)


def empirical_win_matrix(battles: pd.DataFrame) -> pd.DataFrame:
    """Observed share of points of row model against column model (ties = half), NaN if unmet."""
    names, ia, ib, y = _encode(battles)
    n = len(names)
    games = np.zeros((n, n))
    score = np.zeros((n, n))
    np.add.at(games, (ia, ib), 1.0)
    np.add.at(score, (ia, ib), y)
    games_sym = games + games.T
    score_sym = score + (games.T - score.T)  # a's points against b = b's losses against a
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(games_sym > 0, score_sym / games_sym, np.nan)
    np.fill_diagonal(rate, np.nan)
    return pd.DataFrame(rate, index=pd.Index(names, name="model"), columns=names)


def to_elo(strength: Any, base: float = 1000.0) -> Any:
    """Convert log-odds strengths to the Elo-like arena scale: 400 / ln 10 * s + base.

    A 400-point gap means 10:1 odds, as in chess Elo and on Chatbot Arena. Accepts a float,
    NumPy array, pandas Series/DataFrame or torch tensor and returns the same kind.
    """
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not math.isfinite(base):
        raise TypeError(f"base must be a finite number, got {base!r}")
    if isinstance(strength, (bool, str, bytes)) or strength is None:
        raise TypeError(f"strength must be a number or an array of numbers, got {strength!r}")
    if isinstance(strength, (pd.Series, pd.DataFrame)):
        if not all(np.issubdtype(dt, np.number) for dt in np.atleast_1d(strength.dtypes)):
            raise TypeError("strength must hold numbers only")
        as_float_array(strength.to_numpy(), "strength", ndim=None)  # refuses NaN / inf
        return strength * ELO_PER_LOGIT + base
    if isinstance(strength, torch.Tensor):
        as_float_array(strength, "strength", ndim=None)
        return strength.to(torch.get_default_dtype() if not strength.is_floating_point()
                           else strength.dtype) * ELO_PER_LOGIT + base
    if isinstance(strength, (int, float, np.number)):
        return float(as_float_array(strength, "strength", ndim=None)) * ELO_PER_LOGIT + base
    return _as_float_array(strength, "strength") * ELO_PER_LOGIT + base


# ----------------------------------------------------------------------------------------------
# Ties that depend on the gap: Davidson (1970) and Rao & Kupper (1967)
# ----------------------------------------------------------------------------------------------
def _gap_array(gap: Any) -> tuple[np.ndarray, bool]:
    arr = as_float_array(gap, "gap", ndim=None)
    return arr, arr.ndim == 0


def _out(values: np.ndarray, scalar: bool) -> Any:
    return float(values) if scalar else values


def davidson_probabilities(gap: Any, nu: float = 1.0) -> tuple[Any, Any, Any]:
    """(P(win), P(tie), P(loss)) of item 1 under Davidson's (1970) tie model, for gap = r1 - r2.

    Davidson: P(i wins) = p_i / (p_i + p_j + nu * sqrt(p_i p_j)), P(tie) = nu * sqrt(p_i p_j) / (same).
    With p = exp(r) and d = r_i - r_j this is P(tie) = nu / (2 cosh(d / 2) + nu): largest at
    d = 0 (nu / (2 + nu)) and falling as the gap grows, as real ties do. nu = 0 is plain
    Bradley-Terry. Computed in log space, so any gap is finite. Floats in, floats out; arrays
    in, arrays out.
    """
    nu = _check_nonnegative(nu, "nu")
    d, scalar = _gap_array(gap)
    log_nu = math.log(nu) if nu > 0 else -math.inf
    log_den = np.logaddexp(np.logaddexp(d / 2, -d / 2), log_nu)
    win, loss = np.exp(d / 2 - log_den), np.exp(-d / 2 - log_den)
    tie = np.exp(log_nu - log_den) if nu > 0 else np.zeros_like(d)
    return _out(win, scalar), _out(tie, scalar), _out(loss, scalar)


def rao_kupper_probabilities(gap: Any, theta: float = 1.5) -> tuple[Any, Any, Any]:
    """(P(win), P(tie), P(loss)) of item 1 under Rao & Kupper's (1967) threshold model.

    Rao-Kupper: P(i wins) = p_i / (p_i + theta p_j) = sigmoid(d - ln theta), symmetric for a
    loss, and a tie takes the rest: 1 - sigmoid(d - eta) - sigmoid(-d - eta) with eta = ln theta.
    A judge only expresses a preference when the gap clears a threshold, so ties are likeliest
    at d = 0. theta = 1 is plain Bradley-Terry (no ties).
    """
    theta = _check_nonnegative(theta, "theta")
    if theta < 1:
        raise ValueError(f"theta must be >= 1 (theta = 1 means no ties), got {theta}")
    d, scalar = _gap_array(gap)
    eta = math.log(theta)
    win, loss = expit(d - eta), expit(-d - eta)
    tie = np.clip(1.0 - win - loss, 0.0, 1.0)
    return _out(win, scalar), _out(tie, scalar), _out(loss, scalar)


def _check_nonnegative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


# ----------------------------------------------------------------------------------------------
# Rankings of K items: Plackett-Luce
# ----------------------------------------------------------------------------------------------
def plackett_luce_nll(rewards: torch.Tensor, ranking: Any) -> torch.Tensor:
    """Negative log-likelihood of a ranking under Plackett-Luce (Luce 1959; Plackett 1975).

    `rewards[..., i]` is item i's reward; `ranking[..., k]` is the index of the item placed
    k-th, best first (a permutation of 0..K-1). The ranking is read as K - 1 choices: the best
    item is chosen from all K with probability softmax(rewards), the second from the K - 1 left,
    and so on:

        -log P(ranking) = -sum_k [ r_{ranking[k]} - logsumexp(r_{ranking[k:]}) ]

    For K = 2 this is exactly the pairwise loss -log sigmoid(r_w - r_l); Plackett-Luce is the
    K-wise Bradley-Terry. (InstructGPT's loss is different: the mean pairwise loss over all
    C(K, 2) pairs of a ranking.) Returns one value per ranking (a 0-d tensor for one ranking),
    differentiable with respect to `rewards`; stable for any reward size (logcumsumexp).
    """
    if not isinstance(rewards, torch.Tensor) or not rewards.is_floating_point():
        raise TypeError("rewards must be a floating-point torch tensor")
    if rewards.ndim == 0 or rewards.shape[-1] < 2:
        raise ValueError(f"need at least 2 items to rank, got rewards of shape {tuple(rewards.shape)}")
    as_float_array(rewards, "rewards", ndim=None)  # refuses NaN / inf
    order = torch.as_tensor(ranking, device=rewards.device)
    if order.is_floating_point() or order.dtype == torch.bool:
        raise TypeError(f"ranking must hold integer item indices, got dtype {order.dtype}")
    if order.shape != rewards.shape:
        raise ValueError(f"ranking has shape {tuple(order.shape)}, rewards {tuple(rewards.shape)}: "
                         "one index per item")
    k = rewards.shape[-1]
    expected = torch.arange(k, device=order.device).expand_as(order)
    if not torch.equal(order.long().sort(dim=-1).values, expected):
        raise ValueError(f"ranking must be a permutation of 0..{k - 1} (each item once), got "
                         f"{order.tolist()}")
    ordered = rewards.gather(-1, order.long())
    # logsumexp over the items still unplaced at each stage = reversed cumulative logsumexp.
    remaining = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)
    return -(ordered - remaining)[..., :-1].sum(-1)
