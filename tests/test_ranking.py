import numpy as np
import pytest
import torch

from rmcourse.ranking import kendall_tau, ranking_kendall_taus, score_responses, seed_kendall_tau


def test_identical_and_reversed_orders():
    truth = [3.0, 1.0, 2.0, 5.0]
    assert kendall_tau(truth, [30, 10, 20, 50]) == pytest.approx(1.0)
    assert kendall_tau(truth, [-3, -1, -2, -5]) == pytest.approx(-1.0)
    # one swapped pair out of six: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)


def test_seed_version_is_wrong_where_the_fix_says_perfect():
    # a model whose scores order six items exactly as their true quality does
    quality = np.array([3.0, 1.0, 4.0, 2.0, 5.0, 0.0])
    scores = quality / 10
    true_ranks = np.array([3, 5, 2, 4, 1, 6])  # 1 = best, what the seed calls true_ranking
    assert kendall_tau(quality, scores) == pytest.approx(1.0)
    assert kendall_tau(-true_ranks, scores) == pytest.approx(1.0)
    # the seed compares ranks with argsort indices (an item order): far from 1 either way
    assert seed_kendall_tau(true_ranks, scores) < 0.5
    assert seed_kendall_tau(quality, scores) < 0.5


def _toy_score_fn(prompts, responses):
    return torch.tensor([len(r) + 0.1 * len(p) for p, r in zip(prompts, responses)], dtype=torch.float32)


class _ToyModel:
    def __init__(self):
        self.calls = []

    def score(self, prompts, responses, batch_size=32):
        self.calls.append((len(prompts), batch_size))
        return _toy_score_fn(prompts, responses)


def _rows():
    return [
        {"prompt": "p1", "responses": ["a", "aaa", "aa"], "gold": [1.0, 3.0, 2.0]},
        {"prompt": "prompt2", "responses": ["bbbb", "b", "bb", "bbb"], "gold": [4.0, 1.0, 2.0, 3.0]},
        {"prompt": "p3", "responses": ["cc", "c"], "gold": [0.0, 1.0]},
    ]


def test_batched_equals_one_by_one():
    rows = _rows()
    batched = score_responses(_toy_score_fn, [r["prompt"] for r in rows],
                              [r["responses"] for r in rows], batch_size=4)
    single = [np.array([float(_toy_score_fn([r["prompt"]], [x])[0]) for x in r["responses"]])
              for r in rows]
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    taus, scores = ranking_kendall_taus(_toy_score_fn, rows, batch_size=2, return_scores=True)
    assert taus.tolist() == pytest.approx([1.0, 1.0, -1.0])
    for a, b in zip(scores, single):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_model_score_is_called_once_with_batch_size():
    model = _ToyModel()
    taus = ranking_kendall_taus(model, _rows(), batch_size=5)
    assert model.calls == [(9, 5)]
    assert taus.tolist() == pytest.approx([1.0, 1.0, -1.0])


def test_ranks_with_one_as_best():
    rows = [{"prompt": "p", "responses": ["a", "aa", "aaa"], "rank": [3, 2, 1]}]
    taus = ranking_kendall_taus(_toy_score_fn, rows, truth_key="rank", higher_is_better=False)
    assert taus.tolist() == pytest.approx([1.0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        kendall_tau([1], [1])
    with pytest.raises(ValueError, match="all predicted_scores are equal"):
        kendall_tau([1, 2, 3], [0, 0, 0])
    with pytest.raises(ValueError, match="missing column 'gold'"):
        ranking_kendall_taus(_toy_score_fn, [{"prompt": "p", "responses": ["a", "b"]}])
    with pytest.raises(ValueError, match="empty or non-string response 1 in row 0"):
        score_responses(_toy_score_fn, ["p"], [["a", ""]])
    with pytest.raises(ValueError, match="scorer returned"):
        score_responses(lambda p, r: [0.0], ["p"], [["a", "b"]])
    with pytest.raises(TypeError, match="model_or_score_fn"):
        score_responses(42, ["p"], [["a", "b"]])
    with pytest.raises(ValueError, match="batch_size"):
        score_responses(_toy_score_fn, ["p"], [["a"]], batch_size=0)
