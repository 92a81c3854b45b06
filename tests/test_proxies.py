"""rmcourse.proxies: the course's reward models as cached proxy rewards for a policy."""
import numpy as np
import pytest
import torch

from rmcourse.heads import hashed_features, score_head
from rmcourse.policy import DETAIL, END, FILLER, RIGHT, render
from rmcourse.proxies import ensemble_proxy, head_proxy, model_proxy, odin_proxy, pair_accuracy
from rmcourse.rl import ProxyReward
from rmcourse.world import PreferenceWorld


@pytest.fixture(scope="module")
def world():
    return PreferenceWorld(0)


@pytest.fixture(scope="module")
def train(world):
    return world.pairs("train", 300)


@pytest.fixture(scope="module")
def test_pairs(world):
    return world.pairs("test", 200)


@pytest.fixture(scope="module")
def head(train, one_thread):
    return head_proxy(train)


@pytest.fixture(scope="module")
def answers(world):
    """Policy answers to a few test prompts: (prompt texts, answers) with 0 to 3 details."""
    prompts = world.prompts("test", 12)
    texts, outs = [], []
    for seq in ([RIGHT, END], [RIGHT, DETAIL, END], [RIGHT, DETAIL, DETAIL, DETAIL, END]):
        for p in prompts:
            texts.append(p["text"])
            outs.append(render(p, seq))
    return texts, outs


def _check_scores(proxy, answers):
    texts, outs = answers
    scores = proxy(texts, outs)
    assert isinstance(scores, np.ndarray) and scores.shape == (len(outs),)
    assert scores.dtype == float and np.isfinite(scores).all()
    assert len(np.unique(scores)) > 1  # it reads the text: not a constant
    # the cache gives back the same scores without calling the model again
    calls = proxy.calls
    np.testing.assert_array_equal(proxy(texts, outs), scores)
    assert proxy.calls == calls
    return scores


def test_head_proxy_scores_answers_and_ranks_test_pairs(head, answers, test_pairs):
    assert isinstance(head, ProxyReward) and head.name == "head"
    assert isinstance(head.model, torch.nn.Module)
    scores = _check_scores(head, answers)
    # the proxy is the trained head applied to hashed features, nothing else
    texts, outs = answers
    direct = score_head(head.model, hashed_features(texts, outs)).detach().numpy()
    np.testing.assert_allclose(scores, direct, rtol=1e-5, atol=1e-6)
    acc = pair_accuracy(head, test_pairs)
    assert 0.0 <= acc <= 1.0
    assert acc > 0.55


def test_head_proxy_likes_detail_and_filler(head, world):
    prompts = world.prompts("test", 20)
    texts = [p["text"] for p in prompts]

    def score(seq):
        return head(texts, [render(p, seq) for p in prompts])

    bare = score([RIGHT, END])
    detailed = score([RIGHT, DETAIL, DETAIL, DETAIL, END])
    padded = score([RIGHT, FILLER, FILLER, FILLER, END])
    assert np.mean(detailed > bare) > 0.5
    # trained on the train split, where padding goes with quality: the proxy rewards filler too
    assert np.mean(padded > bare) > 0.5


def test_head_proxy_is_deterministic(train, head, answers):
    again = head_proxy(train, seed=0)
    np.testing.assert_allclose(again(*answers), head(*answers), rtol=1e-6)
    assert head_proxy(train, name="h2").name == "h2"


@pytest.mark.parametrize("method", ["mean", "worst", "uncertainty"])
def test_ensemble_proxy_combines_its_members(method, train, answers, one_thread):
    proxy = ensemble_proxy(train, n_members=2, method=method, lam=0.5, epochs=1, seed=1)
    assert proxy.name == f"ensemble-{method}"
    assert len(proxy.members) == 2
    scores = _check_scores(proxy, answers)
    x = hashed_features(*answers)
    members = np.stack([score_head(h, x).detach().numpy() for h in proxy.members])
    want = {"mean": members.mean(0), "worst": members.min(0),
            "uncertainty": members.mean(0) - 0.5 * members.var(0)}[method]  # population variance
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)
    if method != "mean":
        assert np.all(scores <= members.mean(0) + 1e-6)
    # members are trained on different resamples with different seeds: they disagree
    assert np.abs(members[0] - members[1]).max() > 1e-3


def test_ensemble_proxy_validation(train):
    for bad in (1, 0, 2.0, True):
        with pytest.raises(ValueError, match="n_members"):
            ensemble_proxy(train, n_members=bad)
    with pytest.raises(ValueError, match="method"):
        proxy = ensemble_proxy(train, n_members=2, method="median", epochs=1)
        proxy(["q"], ["an answer"])  # an unknown method fails at the latest on the first score
    assert ensemble_proxy(train, n_members=2, epochs=1, name="e").name == "e"


def test_odin_proxy_scores_answers(train, answers, test_pairs, one_thread):
    proxy = odin_proxy(train)
    assert proxy.name == "odin" and isinstance(proxy.model, torch.nn.Module)
    _check_scores(proxy, answers)
    assert 0.0 <= pair_accuracy(proxy, test_pairs.select(range(50))) <= 1.0


@pytest.mark.parametrize("make", [head_proxy, ensemble_proxy, odin_proxy])
def test_a_bad_train_argument_is_a_type_error(make, train):
    with pytest.raises(TypeError, match="pair dataset"):
        make([("prompt", "chosen", "rejected")])
    with pytest.raises(TypeError, match="pair dataset"):
        make({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})
    with pytest.raises(TypeError, match="pair dataset"):
        make(train.remove_columns("rejected"))


class _FakeModel:
    def __init__(self):
        self.batch_sizes = []

    def score(self, prompts, answers, batch_size=32):
        self.batch_sizes.append(batch_size)
        return torch.tensor([float(len(a.split())) for a in answers])


def test_model_proxy_wraps_any_object_with_score():
    model = _FakeModel()
    proxy = model_proxy(model, batch_size=7)
    assert isinstance(proxy, ProxyReward) and proxy.name == "minilm"
    out = proxy(["p", "p", "q"], ["one two", "one two", "a b c"])
    assert out.tolist() == [2.0, 2.0, 3.0]
    assert model.batch_sizes == [7]
    proxy(["p"], ["one two"])
    assert model.batch_sizes == [7]  # cached
    with pytest.raises(TypeError, match="RewardModel"):
        model_proxy(object())
    with pytest.raises(TypeError, match="RewardModel"):
        model_proxy(lambda p, a: np.zeros(len(a)))


def test_pair_accuracy_counts_strict_wins(test_pairs):
    pairs = test_pairs.select(range(40))
    gold = {}
    for row in pairs:
        gold[(row["prompt"], row["chosen"])] = row["chosen_gold"]
        gold[(row["prompt"], row["rejected"])] = row["rejected_gold"]

    def oracle(prompts, answers):
        return np.array([gold[(p, a)] for p, a in zip(prompts, answers)])

    assert pair_accuracy(ProxyReward(oracle), pairs) == 1.0  # test pairs: chosen has the higher gold
    assert pair_accuracy(ProxyReward(lambda p, a: -oracle(p, a)), pairs) == 0.0
    assert pair_accuracy(ProxyReward(lambda p, a: np.zeros(len(a))), pairs) == 0.0  # ties are wrong
    # a length proxy is right exactly where the chosen answer is the longer one
    words = ProxyReward(lambda p, a: np.array([len(x.split()) for x in a], dtype=float))
    want = np.mean(np.array(pairs["chosen_words"]) > np.array(pairs["rejected_words"]))
    assert 0.0 < want < 1.0
    assert pair_accuracy(words, pairs) == pytest.approx(want)
