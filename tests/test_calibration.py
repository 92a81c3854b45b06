import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from rmcourse.calibration import (
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    pairwise_nll,
    predicted_side_confidence,
    reliability_diagram,
    reliability_table,
)


@pytest.fixture(scope="module")
def calibrated_sample():
    """Rewards whose BT probability is the true one: labels are drawn from sigmoid(r_a - r_b)."""
    rng = np.random.default_rng(0)
    n = 20_000
    a = rng.normal(0, 1.5, n)
    b = rng.normal(0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(a - b)))).astype(float)
    return a, b, labels


def test_confidence_is_of_the_predicted_side():
    conf, correct = predicted_side_confidence([2.0, 0.0, 1.0], [0.0, 2.0, 1.0])
    p = 1 / (1 + np.exp(-2.0))
    assert conf == pytest.approx([p, p, 0.5])
    assert correct.tolist() == [True, False, False]  # a tie predicts no side: wrong
    conf, correct = predicted_side_confidence([0.0], [2.0], labels=[0])
    assert correct.tolist() == [True]


def test_calibrated_sample_has_small_ece(calibrated_sample):
    a, b, y = calibrated_sample
    conf, correct = predicted_side_confidence(a, b, labels=y)
    assert expected_calibration_error(conf, correct) < 0.02


def test_overconfident_sample_is_detected_and_fixed_by_temperature(calibrated_sample):
    a, b, y = calibrated_sample
    conf, correct = predicted_side_confidence(3 * a, 3 * b, labels=y)
    ece_before = expected_calibration_error(conf, correct)
    assert ece_before > 0.08
    t = fit_temperature(3 * a, 3 * b, labels=y)
    assert t == pytest.approx(3.0, rel=0.08)
    conf_t, correct_t = predicted_side_confidence(apply_temperature(3 * a, t),
                                                  apply_temperature(3 * b, t), labels=y)
    assert expected_calibration_error(conf_t, correct_t) < ece_before / 3
    assert pairwise_nll(3 * a, 3 * b, y, temperature=t) < pairwise_nll(3 * a, 3 * b, y)


def test_ece_hand_computed():
    # bin [0.5, 0.75): conf 0.6, 0.6 both right -> gap 0.4; bin [0.75, 1]: conf 0.9 wrong -> 0.9
    ece = expected_calibration_error([0.6, 0.6, 0.9], [1, 1, 0], n_bins=2)
    assert ece == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.9)
    table = reliability_table([0.6, 0.6, 0.9], [1, 1, 0], n_bins=2)
    assert table["n"].tolist() == [2, 1]


def test_reliability_diagram_returns_table():
    ax, table = reliability_diagram([0.55, 0.7, 0.95, 1.0], [1, 0, 1, 1], n_bins=5)
    assert table["n"].sum() == 4 and ax.get_xlabel()


def test_apply_temperature_keeps_type():
    assert isinstance(apply_temperature(torch.ones(3), 2.0), torch.Tensor)
    assert apply_temperature([2.0, 4.0], 2.0).tolist() == [1.0, 2.0]


def test_brier():
    assert brier_score([1.0, 0.5], [1, 0]) == pytest.approx(0.125)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"confidence must lie in \[0.5, 1\]"):
        expected_calibration_error([0.2, 0.9], [1, 1])
    with pytest.raises(ValueError, match="differ in length"):
        expected_calibration_error([0.6, 0.9], [1])
    with pytest.raises(ValueError, match="correct must hold booleans"):
        expected_calibration_error([0.6], [0.5])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0.6], [1], n_bins=0)
    with pytest.raises(ValueError, match="chosen and rejected differ"):
        predicted_side_confidence([1.0, 2.0], [0.0])
    with pytest.raises(ValueError, match="non-finite"):
        fit_temperature([np.inf], [0.0])
    with pytest.raises(ValueError, match="not identifiable"):
        fit_temperature([1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="temperature must be a positive"):
        apply_temperature([1.0], 0.0)
    with pytest.raises(TypeError):
        brier_score("0.5", [1])
    with pytest.raises(ValueError, match="labels must be in"):
        pairwise_nll([1.0], [0.0], labels=[2.0])
