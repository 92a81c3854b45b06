import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from rmcourse.bradley_terry import (
    ELO_PER_LOGIT,
    bootstrap_leaderboard,
    bt_probability,
    empirical_win_matrix,
    fit_bt,
    predicted_win_matrix,
    simulate_battles,
    simulate_battles_from_matrix,
    to_elo,
)

TRUTH = {"m0": 1.5, "m1": 0.9, "m2": 0.4, "m3": 0.0, "m4": -0.3, "m5": -0.8, "m6": -1.7}


# --- bt_probability -----------------------------------------------------------------------------
@pytest.mark.parametrize("r1,r2", [(0.3, -1.2), (2.0, 2.0), (-4.0, 1.0)])
def test_bt_probability_matches_exp_form(r1, r2):
    naive = math.exp(r1) / (math.exp(r1) + math.exp(r2))
    assert bt_probability(r1, r2) == pytest.approx(naive, rel=1e-12)
    assert isinstance(bt_probability(r1, r2), float)


def test_bt_probability_symmetric_numpy_and_torch():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50) * 5, rng.normal(size=50) * 5
    assert np.allclose(bt_probability(a, b) + bt_probability(b, a), 1.0)
    ta, tb = torch.tensor(a), torch.tensor(b)
    out = bt_probability(ta, tb)
    assert isinstance(out, torch.Tensor) and out.shape == (50,)
    assert torch.allclose(out + bt_probability(tb, ta), torch.ones(50, dtype=out.dtype))
    assert np.allclose(out.numpy(), bt_probability(a, b))


@pytest.mark.parametrize("gap", [1000.0, -1000.0, 1e6])
def test_bt_probability_stable_at_extreme_gaps(gap):
    for r1, r2 in ((gap, 0.0), (0.0, gap), (gap, gap)):
        p = bt_probability(r1, r2)
        assert math.isfinite(p) and 0.0 <= p <= 1.0
        t = bt_probability(torch.tensor([r1], dtype=torch.float32), torch.tensor([r2]))
        assert torch.isfinite(t).all()
    assert bt_probability(gap, 0.0) == (1.0 if gap > 0 else 0.0)
    assert bt_probability(gap, gap) == 0.5


def test_bt_probability_mixed_tensor_and_float_and_grad():
    r = torch.tensor([0.0, 1.0], requires_grad=True)
    p = bt_probability(r, 0.5)
    p.sum().backward()
    assert torch.isfinite(r.grad).all() and (r.grad > 0).all()


def test_bt_probability_temperature_flattens():
    assert bt_probability(1.0, 0.0, temperature=2.0) == pytest.approx(bt_probability(0.5, 0.0))
    assert bt_probability(1.0, 0.0, temperature=0.1) > 0.9999


@pytest.mark.parametrize("bad,err", [(("a", 1.0), TypeError), ((None, 1.0), TypeError)])
def test_bt_probability_bad_inputs(bad, err):
    with pytest.raises(err, match="r1"):
        bt_probability(*bad)


@pytest.mark.parametrize("temp", [0.0, -1.0, float("inf")])
def test_bt_probability_bad_temperature(temp):
    with pytest.raises(ValueError, match="temperature"):
        bt_probability(1.0, 0.0, temperature=temp)


# --- simulate_battles ---------------------------------------------------------------------------
def test_simulate_battles_schema_seed_and_ties():
    battles = simulate_battles(TRUTH, 4000, seed=3, tie_prob=0.2)
    assert list(battles.columns) == ["model_a", "model_b", "winner"]
    assert len(battles) == 4000
    assert set(battles["winner"]) == {"a", "b", "tie"}
    assert (battles["model_a"] != battles["model_b"]).all()
    n_ties = int((battles["winner"] == "tie").sum())
    assert battles.attrs["n_ties"] == n_ties
    assert 0.17 < n_ties / 4000 < 0.23
    again = simulate_battles(TRUTH, 4000, seed=3, tie_prob=0.2)
    pd.testing.assert_frame_equal(battles, again)
    other = simulate_battles(TRUTH, 4000, seed=4, tie_prob=0.2)
    assert not battles.equals(other)


def test_simulate_battles_follows_bt_probability():
    battles = simulate_battles({"strong": 1.0, "weak": 0.0}, 20000, seed=0)
    a_is_strong = battles["model_a"] == "strong"
    strong_won = np.where(a_is_strong, battles["winner"] == "a", battles["winner"] == "b")
    assert strong_won.mean() == pytest.approx(bt_probability(1.0, 0.0), abs=0.01)
    assert 0.48 < a_is_strong.mean() < 0.52  # sides are drawn at random


def test_simulate_battles_sequence_names():
    battles = simulate_battles([0.0, 1.0, 2.0], 50, seed=0)
    assert set(battles["model_a"]) | set(battles["model_b"]) == {"model_0", "model_1", "model_2"}


@pytest.mark.parametrize(
    "kwargs,err,msg",
    [
        (dict(strengths={"a": 1.0}, n_battles=10), ValueError, "at least 2"),
        (dict(strengths={"a": 1.0, "b": float("nan")}, n_battles=10), ValueError, "not finite"),
        (dict(strengths="ab", n_battles=10), TypeError, "strengths"),
        (dict(strengths=[0.0, 1.0], n_battles=0), ValueError, "n_battles"),
        (dict(strengths=[0.0, 1.0], n_battles=2.5), TypeError, "n_battles"),
        (dict(strengths=[0.0, 1.0], n_battles=5, tie_prob=1.0), ValueError, "tie_prob"),
        (dict(strengths=[0.0, 1.0], n_battles=5, seed="x"), TypeError, "seed"),
    ],
)
def test_simulate_battles_bad_inputs(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        simulate_battles(**kwargs)


def test_simulate_battles_from_matrix_validates():
    names = ["r", "p", "s"]
    bad = pd.DataFrame([[0.5, 0.9, 0.2], [0.2, 0.5, 0.8], [0.8, 0.2, 0.5]], index=names,
                       columns=names)
    with pytest.raises(ValueError, match="must be 1"):
        simulate_battles_from_matrix(bad, 10)
    with pytest.raises(ValueError, match="square"):
        simulate_battles_from_matrix(bad.iloc[:, :2], 10)
    with pytest.raises(TypeError, match="DataFrame"):
        simulate_battles_from_matrix(bad.to_numpy(), 10)


# --- fit_bt -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def battles():
    return simulate_battles(TRUTH, 6000, seed=1)


def test_fit_bt_recovers_strengths(battles):
    fitted = fit_bt(battles)
    assert fitted.name == "strength"
    assert abs(fitted.mean()) < 1e-10
    truth = pd.Series(TRUTH)
    truth = truth - truth.mean()
    aligned = fitted.reindex(truth.index)
    assert np.corrcoef(aligned, truth)[0, 1] > 0.99
    assert spearmanr(aligned, truth).statistic > 0.95
    assert (aligned - truth).abs().max() < 0.15
    assert list(fitted.index) == list(fitted.sort_values(ascending=False).index)


def test_fit_bt_matches_gradient_free_optimum(battles):
    # The analytic gradient must agree with a brute-force optimiser on the same objective.
    from scipy.optimize import minimize

    names = sorted(TRUTH)
    idx = {m: i for i, m in enumerate(names)}
    ia = battles["model_a"].map(idx).to_numpy()
    ib = battles["model_b"].map(idx).to_numpy()
    y = (battles["winner"] == "a").to_numpy(float)

    def nll(s):
        d = s[ia] - s[ib]
        return np.sum(y * np.logaddexp(0, -d) + (1 - y) * np.logaddexp(0, d))

    s = minimize(nll, np.zeros(len(names)), method="Nelder-Mead",
                 options={"maxiter": 20000, "xatol": 1e-7, "fatol": 1e-9}).x
    s -= s.mean()
    fitted = fit_bt(battles, l2=0.0).reindex(names)
    assert np.allclose(fitted.to_numpy(), s, atol=2e-3)


def test_fit_bt_ties_are_half_wins():
    ties = pd.DataFrame({"model_a": ["x", "y"] * 5, "model_b": ["y", "x"] * 5, "winner": "tie"})
    assert np.allclose(fit_bt(ties, l2=0.0).to_numpy(), 0.0, atol=1e-6)
    # x: 2 wins + 2 ties out of 4 = 3/4 of the points -> gap = logit(0.75) = ln 3
    mixed = pd.DataFrame({"model_a": ["x"] * 4, "model_b": ["y"] * 4,
                          "winner": ["a", "a", "tie", "tie"]})
    s = fit_bt(mixed, l2=0.0)
    assert s["x"] - s["y"] == pytest.approx(math.log(3), abs=1e-4)


def test_fit_bt_accepts_arena_spellings():
    arena = pd.DataFrame({"model_a": ["x", "y", "x"], "model_b": ["y", "x", "y"],
                          "winner": ["model_a", "model_a", "tie (bothbad)"]})
    plain = arena.assign(winner=["a", "a", "tie"])
    pd.testing.assert_series_equal(fit_bt(arena), fit_bt(plain))


def test_fit_bt_l2_keeps_undefeated_model_finite():
    sweep = pd.DataFrame({"model_a": ["x", "y", "z"], "model_b": ["y", "z", "x"],
                          "winner": ["a", "a", "b"]})  # x never loses
    with pytest.raises(ValueError, match="l2 > 0"):
        fit_bt(sweep, l2=0.0)
    s = fit_bt(sweep, l2=1e-2)
    assert np.isfinite(s).all() and s.index[0] == "x"


def test_fit_bt_predicted_vs_empirical_win_matrix(battles):
    pred = predicted_win_matrix(fit_bt(battles))
    emp = empirical_win_matrix(battles).reindex(index=pred.index, columns=pred.columns)
    off = ~np.eye(len(pred), dtype=bool)
    assert np.nanmax(np.abs((pred.to_numpy() - emp.to_numpy())[off])) < 0.08
    assert np.allclose(pred.to_numpy() + pred.to_numpy().T, 1.0)


def test_intransitive_cycle_fits_to_equal_strengths():
    names = ["rock", "scissors", "paper"]
    p = pd.DataFrame([[0.5, 0.8, 0.2], [0.2, 0.5, 0.8], [0.8, 0.2, 0.5]], index=names,
                     columns=names)
    battles = simulate_battles_from_matrix(p, 6000, seed=0)
    s = fit_bt(battles)
    assert s.abs().max() < 0.1
    assert np.allclose(predicted_win_matrix(s).to_numpy(), 0.5, atol=0.05)
    assert empirical_win_matrix(battles).loc["rock", "scissors"] == pytest.approx(0.8, abs=0.03)


@pytest.mark.parametrize(
    "frame,err,msg",
    [
        (pd.DataFrame({"model_a": [], "model_b": [], "winner": []}), ValueError, "empty"),
        (pd.DataFrame({"model_a": ["x"], "winner": ["a"]}), ValueError, "missing column 'model_b'"),
        (pd.DataFrame({"model_a": ["x", "y"], "model_b": ["y", "x"], "winner": ["a", "draw"]}),
         ValueError, "unknown winner value 'draw' in row 1"),
        (pd.DataFrame({"model_a": ["x"], "model_b": ["x"], "winner": ["a"]}), ValueError,
         "battles itself"),
        (pd.DataFrame({"model_a": ["x", None], "model_b": ["y", "x"], "winner": ["a", "b"]}),
         ValueError, "missing model name"),
        (pd.DataFrame({"model_a": ["w", "y"], "model_b": ["x", "z"], "winner": ["a", "b"]}),
         ValueError, "never meet"),
    ],
)
def test_fit_bt_bad_battles(frame, err, msg):
    with pytest.raises(err, match=msg):
        fit_bt(frame)


def test_fit_bt_model_without_battles_and_bad_args(battles):
    with pytest.raises(ValueError, match="'ghost' has no battles"):
        fit_bt(battles, models=sorted(TRUTH) + ["ghost"])
    with pytest.raises(ValueError, match="not in `models`"):
        fit_bt(battles, models=["m0", "m1"])
    with pytest.raises(TypeError, match="DataFrame"):
        fit_bt(battles.to_dict("records"))
    with pytest.raises(ValueError, match="l2"):
        fit_bt(battles, l2=-1.0)


# --- bootstrap_leaderboard ----------------------------------------------------------------------
def test_bootstrap_leaderboard_contains_truth(battles):
    board = bootstrap_leaderboard(battles, n_boot=60, seed=0)
    assert list(board.columns[:6]) == ["model", "strength", "ci_low", "ci_high", "rank",
                                       "arena_rank"]
    assert list(board["rank"]) == list(range(1, len(TRUTH) + 1))
    assert board["strength"].is_monotonic_decreasing
    assert (board["ci_low"] <= board["strength"]).all()
    assert (board["strength"] <= board["ci_high"]).all()
    truth = pd.Series(TRUTH) - np.mean(list(TRUTH.values()))
    inside = (board["ci_low"] <= board["model"].map(truth)) & (
        board["model"].map(truth) <= board["ci_high"])
    assert inside.mean() >= 5 / 7
    assert (board["arena_rank"] <= board["rank"]).all()
    assert board["n_battles"].sum() == 2 * len(battles)
    again = bootstrap_leaderboard(battles, n_boot=60, seed=0)
    pd.testing.assert_frame_equal(board, again)


def test_bootstrap_ci_width_shrinks_with_data():
    small = bootstrap_leaderboard(simulate_battles(TRUTH, 700, seed=2), n_boot=40, seed=0)
    large = bootstrap_leaderboard(simulate_battles(TRUTH, 7000, seed=2), n_boot=40, seed=0)
    width = lambda b: (b["ci_high"] - b["ci_low"]).mean()  # noqa: E731
    assert width(large) < 0.5 * width(small)


def test_bootstrap_bad_args(battles):
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_leaderboard(battles, n_boot=0)
    with pytest.raises(ValueError, match="ci"):
        bootstrap_leaderboard(battles, n_boot=5, ci=1.5)
    tiny = pd.DataFrame({"model_a": ["x", "y", "z"], "model_b": ["y", "z", "x"],
                         "winner": ["a", "b", "tie"]})
    with pytest.raises(ValueError, match="too few battles|never meet"):
        bootstrap_leaderboard(tiny, n_boot=50, seed=0)


# --- to_elo -------------------------------------------------------------------------------------
def test_to_elo_scale():
    assert to_elo(0.0) == 1000.0
    assert to_elo(math.log(10)) == pytest.approx(1400.0)
    assert ELO_PER_LOGIT == pytest.approx(173.7178, abs=1e-4)
    s = pd.Series({"a": 1.0, "b": -1.0})
    elo = to_elo(s)
    assert isinstance(elo, pd.Series) and elo["a"] - elo["b"] == pytest.approx(2 * ELO_PER_LOGIT)
    assert np.allclose(to_elo(np.array([0.0, 1.0]), base=1500), [1500, 1500 + ELO_PER_LOGIT])
    assert torch.allclose(to_elo(torch.tensor([1.0])), torch.tensor([1000 + ELO_PER_LOGIT]))
    # A 400-point gap means 10:1 odds.
    assert bt_probability(math.log(10), 0.0) == pytest.approx(10 / 11)


@pytest.mark.parametrize("bad", ["1.0", None, True])
def test_to_elo_bad_input(bad):
    with pytest.raises(TypeError, match="strength"):
        to_elo(bad)


# --- ties that depend on the gap: Davidson, Rao-Kupper ------------------------------------------
from rmcourse.bradley_terry import (  # noqa: E402
    davidson_probabilities,
    plackett_luce_nll,
    rao_kupper_probabilities,
)


@pytest.mark.parametrize("model,param", [(davidson_probabilities, 1.0),
                                         (rao_kupper_probabilities, 2.0)])
def test_tie_models_are_distributions_with_ties_likeliest_at_gap_zero(model, param):
    gaps = np.linspace(-6, 6, 121)
    win, tie, loss = model(gaps, param)
    assert np.allclose(win + tie + loss, 1.0)
    assert (tie >= 0).all() and np.argmax(tie) == 60                  # gap 0
    assert np.all(np.diff(tie[60:]) < 0) and np.allclose(tie, tie[::-1])  # falls with |gap|
    assert np.allclose(win, loss[::-1])                                # symmetric
    assert np.all(np.diff(win) > 0)
    assert isinstance(model(0.0, param)[1], float)


def test_davidson_closed_forms_and_limits():
    # P(tie) at gap 0 is nu / (2 + nu); the original form p_i / (p_i + p_j + nu sqrt(p_i p_j)).
    assert davidson_probabilities(0.0, 1.0)[1] == pytest.approx(1 / 3)
    pi, pj, nu = math.exp(0.7), math.exp(-0.4), 0.6
    den = pi + pj + nu * math.sqrt(pi * pj)
    assert davidson_probabilities(1.1, nu) == pytest.approx((pi / den, nu * math.sqrt(pi * pj) / den,
                                                             pj / den))
    win, tie, _ = davidson_probabilities(np.array([-1.0, 2.0]), 0.0)   # nu = 0: Bradley-Terry
    assert np.allclose(win, bt_probability(np.array([-1.0, 2.0]), 0.0)) and (tie == 0).all()
    win, tie, loss = davidson_probabilities(np.array([1000.0, -1000.0]), 2.0)
    assert np.isfinite([win, tie, loss]).all() and win[0] == pytest.approx(1.0)


def test_rao_kupper_closed_form_and_limit():
    pi, pj, theta = math.exp(0.3), math.exp(-0.2), 1.8
    win, tie, loss = rao_kupper_probabilities(0.5, theta)
    assert win == pytest.approx(pi / (pi + theta * pj))
    assert loss == pytest.approx(pj / (pj + theta * pi))
    assert tie == pytest.approx((theta ** 2 - 1) * pi * pj / ((pi + theta * pj) * (theta * pi + pj)))
    assert rao_kupper_probabilities(0.8, 1.0)[1] == pytest.approx(0.0)


@pytest.mark.parametrize("call,error,match", [
    (lambda: davidson_probabilities(0.0, -1.0), ValueError, "nu"),
    (lambda: davidson_probabilities(0.0, "1"), TypeError, "nu"),
    (lambda: rao_kupper_probabilities(0.0, 0.5), ValueError, "theta"),
    (lambda: rao_kupper_probabilities(float("nan"), 1.5), ValueError, "gap"),
    (lambda: davidson_probabilities("1", 1.0), TypeError, "gap"),
])
def test_tie_models_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- Plackett-Luce ------------------------------------------------------------------------------
def test_plackett_luce_is_a_distribution_over_rankings_and_bt_for_two():
    r = torch.tensor([1.2, 0.3, -0.4, -1.0], dtype=torch.float64)
    total = sum(math.exp(-plackett_luce_nll(r, list(p)).item())
                for p in itertools.permutations(range(4)))
    assert total == pytest.approx(1.0, abs=1e-12)
    pair = torch.tensor([0.4, -1.1])
    assert plackett_luce_nll(pair, [0, 1]).item() == pytest.approx(
        -torch.nn.functional.logsigmoid(pair[0] - pair[1]).item(), abs=1e-6)
    # the most likely ranking sorts by reward
    best = min(itertools.permutations(range(4)), key=lambda p: plackett_luce_nll(r, list(p)).item())
    assert list(best) == [0, 1, 2, 3]


def test_plackett_luce_batched_stable_and_differentiable():
    r = torch.tensor([[1.0, -2.0, 0.5], [1000.0, -1000.0, 0.0]], requires_grad=True)
    order = torch.tensor([[2, 0, 1], [0, 2, 1]])
    out = plackett_luce_nll(r, order)
    assert out.shape == (2,) and torch.isfinite(out).all()
    assert out[1].item() == pytest.approx(0.0, abs=1e-6)      # a sure ranking costs nothing
    assert out[0].item() == pytest.approx(plackett_luce_nll(r[0].detach(), order[0]).item())
    out.sum().backward()
    assert torch.isfinite(r.grad).all()
    shifted = plackett_luce_nll(r.detach() + 5.0, order)
    assert torch.allclose(shifted, out.detach(), atol=1e-4)


@pytest.mark.parametrize("rewards,ranking,error,match", [
    (torch.tensor([1.0, 2.0]), [0, 0], ValueError, "permutation"),
    (torch.tensor([1.0, 2.0, 3.0]), [0, 1], ValueError, "shape"),
    (torch.tensor([1.0]), [0], ValueError, "at least 2"),
    (torch.tensor([1, 2]), [0, 1], TypeError, "floating-point"),
    ([1.0, 2.0], [0, 1], TypeError, "floating-point"),
    (torch.tensor([1.0, 2.0]), [0.0, 1.0], TypeError, "integer"),
    (torch.tensor([1.0, float("nan")]), [0, 1], ValueError, "non-finite"),
])
def test_plackett_luce_bad_input(rewards, ranking, error, match):
    with pytest.raises(error, match=match):
        plackett_luce_nll(rewards, ranking)


def test_aggregated_battles_with_a_count_column_are_refused_not_miscounted():
    battles = pd.DataFrame({"model_a": ["x", "y"], "model_b": ["y", "x"], "winner": ["a", "a"],
                            "count": [30, 1]})
    with pytest.raises(ValueError, match="'count' column.*ONE battle.*index.repeat"):
        fit_bt(battles)
    expanded = battles.loc[battles.index.repeat(battles["count"])].drop(columns="count")
    strengths = fit_bt(expanded)
    assert strengths["x"] > strengths["y"]  # 30 wins against 1: the counts now weigh
