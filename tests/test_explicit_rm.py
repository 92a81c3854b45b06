"""The explicit reward model on TopLayerDPO's cache: same blocks, a linear head, the BT loss."""
import pytest
import torch

from rmcourse.dpo import DPOConfig, TopLayerDPO
from rmcourse.explicit_rm import TopLayerRewardModel


@pytest.fixture()
def tiny():
    """A fresh 3-block random Llama with SmolLM2's tokenizer (each test trains it)."""
    from _tiny_causal_lm import make_tiny_llama

    return make_tiny_llama(3)


PROMPTS = ["What is 2 + 2?", "Name a colour.", "Say hi.", "Count to two."]
CHOSEN = ["It is 4.", "Blue.", "Hi there!", "One, two."]
REJECTED = ["It is 5, I think, or maybe 6.", "Seven.", "No.", "Three, four, five."]


def test_the_reward_reads_the_full_models_last_hidden_state(tiny, one_thread):
    model, tok = tiny
    dpo = TopLayerDPO(model, tok, trainable_layers=1, bf16=False)
    cache = dpo.encode(PROMPTS, CHOSEN, REJECTED, batch_size=2, progress=False)
    rm = TopLayerRewardModel(dpo)
    cr, rr = rm.rewards(cache)
    assert cr.abs().max() == 0 and rr.abs().max() == 0  # zero head: every pair tied before training
    torch.manual_seed(1)
    torch.nn.init.normal_(rm.head.weight)
    cr, rr = rm.rewards(cache)
    with torch.no_grad():
        for i in range(len(PROMPTS)):
            ids = cache.input_ids[len(PROMPTS) + i][None]  # the i-th rejected sequence
            h = model.model(input_ids=ids).last_hidden_state[0, -1]
            assert float(rr[i]) == pytest.approx(float(rm.head(h)), abs=1e-4)


def test_training_fits_the_pairs_and_leaves_the_policy_alone(tiny, one_thread):
    model, tok = tiny
    dpo = TopLayerDPO(model, tok, trainable_layers=1, bf16=False)
    cache = dpo.encode(PROMPTS, CHOSEN, REJECTED, progress=False)
    policy_before = [p.detach().clone() for p in dpo.top_parameters()]
    rm = TopLayerRewardModel(dpo)
    run = rm.train(cache, DPOConfig(learning_rate=1e-2, num_train_epochs=10, per_device_train_batch_size=4,
                                    progress=False), head_learning_rate=1e-1)
    h = run.history
    assert len(h) == 10 and h["loss"].iloc[-1] < h["loss"].iloc[0]
    cr, rr = rm.rewards(cache)
    assert bool((cr > rr).all())
    assert all(torch.equal(a, b) for a, b in zip(policy_before, dpo.top_parameters()))  # its own copy
    assert run.trainable_parameters == sum(p.numel() for p in dpo.top_parameters()) + 33


def test_it_starts_from_the_reference_blocks_even_after_dpo(tiny, one_thread):
    model, tok = tiny
    dpo = TopLayerDPO(model, tok, trainable_layers=1, bf16=False)
    cache = dpo.encode(PROMPTS, CHOSEN, REJECTED, progress=False)
    reference = dpo.reference_top_state()
    dpo.train(cache, DPOConfig(learning_rate=1e-2, num_train_epochs=2, progress=False))
    assert not all(torch.equal(reference[k], v) for k, v in dpo._top_modules().state_dict().items())
    rm = TopLayerRewardModel(dpo)
    assert all(torch.equal(reference[k], v) for k, v in rm.layers.state_dict().items())


def test_bad_input_is_named(tiny):
    model, tok = tiny
    with pytest.raises(TypeError, match="TopLayerDPO"):
        TopLayerRewardModel(model)
    rm = TopLayerRewardModel(TopLayerDPO(model, tok, trainable_layers=1, bf16=False))
    with pytest.raises(TypeError, match="PreferenceCache"):
        rm.rewards([1, 2])
    with pytest.raises(TypeError, match="DPOConfig"):
        rm.train(None, config={"lr": 1})
