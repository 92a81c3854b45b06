"""rmcourse.baselines: the length-plus-noise control."""
import numpy as np
import pytest
from scipy.stats import norm

from rmcourse.baselines import length_noise_control


def test_recovers_the_models_lean_on_length_and_its_noise():
    rng = np.random.default_rng(0)
    words = rng.integers(-30, 31, size=20_000).astype(float)
    gap = 0.05 * words + rng.normal(0, 0.8, size=words.size)
    control = length_noise_control(gap, words)
    assert control.slope == pytest.approx(0.05, rel=0.02)
    assert control.spread == pytest.approx(0.8, rel=0.02)
    # the control's expected accuracy matches how often such a scorer is right
    assert control.p_right.mean() == pytest.approx(np.mean(gap > 0), abs=0.01)
    assert np.allclose(control.p_right, norm.cdf(control.slope * words / control.spread))


def test_a_model_with_quality_signal_beats_the_control_and_a_length_only_one_does_not():
    rng = np.random.default_rng(1)
    words = rng.integers(-30, 31, size=5_000).astype(float)
    quality = rng.exponential(1.0, size=words.size)  # chosen is better: a positive quality gap
    with_quality = 0.03 * words + quality + rng.normal(0, 0.5, size=words.size)
    length_only = 0.03 * words + rng.normal(0, 0.5, size=words.size)
    for gap, beats in ((with_quality, True), (length_only, False)):
        control = length_noise_control(gap, words)
        margin = np.mean(gap > 0) - control.p_right.mean()
        assert bool(margin > 0.05) == beats


@pytest.mark.parametrize("gap, words, message", [
    ([1.0, 2.0], [1.0], "one entry per pair"),
    ([1.0], [1.0], "at least 2 pairs"),
    ([1.0, -1.0], [0, 0], "no length signal"),
    ([1.0, 2.0], [1.0, 2.0], "no noise"),
    ([1.0, np.nan], [1.0, 2.0], "reward_gap"),
])
def test_bad_input_is_named(gap, words, message):
    with pytest.raises(ValueError, match=message):
        length_noise_control(gap, words)
