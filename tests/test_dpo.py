"""DPO: the loss and implicit reward (TRL's definitions), and top-block training on a cache."""
import math

import pytest
import torch
import torch.nn.functional as F

from rmcourse.dpo import DPOConfig, TopLayerDPO, dpo_loss, implicit_reward, tokenize_preferences


def test_dpo_loss_is_bt_on_the_implicit_rewards():
    c, r = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -18.0])
    rc, rr = torch.tensor([-11.0, -20.0]), torch.tensor([-11.0, -19.0])
    losses, cr, rw = dpo_loss(c, r, rc, rr, beta=0.5)
    assert torch.allclose(cr, torch.tensor([0.5, 0.0])) and torch.allclose(rw, torch.tensor([-0.5, 0.5]))
    assert torch.allclose(losses, -F.logsigmoid(cr - rw))
    assert torch.allclose(implicit_reward(c, rc, beta=0.5), cr)
    same, zc, zr = dpo_loss(c, r, c, r)
    assert torch.allclose(same, torch.full((2,), math.log(2))) and zc.abs().max() == 0 and zr.abs().max() == 0


def test_dpo_loss_checks_input():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="beta must be"):
        dpo_loss(x, x, x, x, beta=0.0)
    with pytest.raises(ValueError, match="one value per pair"):
        dpo_loss(x, x, x, torch.zeros(2))
    with pytest.raises(ValueError, match="non-finite"):
        implicit_reward(torch.tensor([float("nan")]), torch.zeros(1))
    with pytest.raises(ValueError, match="shape \\[N\\]"):
        implicit_reward(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="learning_rate"):
        DPOConfig(learning_rate=0)


@pytest.fixture(scope="module")
def tiny():
    """A 3-block random Llama with SmolLM2's tokenizer (and chat template)."""
    from _tiny_causal_lm import make_tiny_llama

    return make_tiny_llama(3)


PROMPTS = ["What is 2 + 2?", "Name a colour.", "Say hi."]
CHOSEN = ["It is 4.", "Blue.", "Hi there!"]
REJECTED = ["It is 5, I think, or maybe 6.", "Seven.", "No."]


def test_tokenize_preferences_splits_prompt_and_completion(tiny):
    _, tok = tiny
    t = tokenize_preferences(tok, PROMPTS, CHOSEN, REJECTED)
    full = tok.apply_chat_template([{"role": "user", "content": PROMPTS[0]},
                                    {"role": "assistant", "content": CHOSEN[0]}], tokenize=False)
    assert t["prompt_input_ids"][0] + t["chosen_input_ids"][0] == tok(full, add_special_tokens=False)["input_ids"]
    assert tok.decode(t["chosen_input_ids"][0]).startswith(CHOSEN[0])
    with pytest.raises(ValueError, match="one of each per pair"):
        tokenize_preferences(tok, PROMPTS, CHOSEN[:2], REJECTED)
    with pytest.raises(ValueError, match="empty text in rejected"):
        tokenize_preferences(tok, PROMPTS, CHOSEN, ["a", " ", "b"])


def test_cached_top_blocks_give_the_full_model_log_probs(tiny, one_thread):
    model, tok = tiny
    dpo = TopLayerDPO(model, tok, trainable_layers=1, bf16=False)
    cache = dpo.encode(PROMPTS, CHOSEN, REJECTED, batch_size=2, progress=False)
    t = tokenize_preferences(tok, PROMPTS, CHOSEN, REJECTED)
    with torch.no_grad():
        for i in range(3):
            ids = torch.tensor([t["prompt_input_ids"][i] + t["rejected_input_ids"][i]])
            logp = model(input_ids=ids).logits.float().log_softmax(-1)[0]
            s = len(t["prompt_input_ids"][i])
            want = logp[torch.arange(s - 1, ids.shape[1] - 1), ids[0, s:]].sum()
            assert float(cache.ref_rejected_logps[i]) == pytest.approx(float(want), abs=1e-3)
    # before any step the policy is the reference: every implicit reward is exactly zero
    cr, rr = dpo.rewards(cache)
    assert cr.abs().max() == 0 and rr.abs().max() == 0
    assert sum(p.requires_grad for p in model.parameters()) == len(dpo.top_parameters())


def test_dpo_training_separates_the_training_pairs(tiny, one_thread):
    model, tok = tiny
    dpo = TopLayerDPO(model, tok, trainable_layers=1, bf16=False)
    cache = dpo.encode(PROMPTS, CHOSEN, REJECTED, progress=False)
    lower = [p.detach().clone() for p in model.model.layers[0].parameters()]
    result = dpo.train(cache, DPOConfig(beta=0.1, learning_rate=2e-2, num_train_epochs=5,
                                        per_device_train_batch_size=3, progress=False), eval_cache=cache)
    h = result.history
    assert list(h.columns[:4]) == ["step", "epoch", "loss", "rewards/chosen"]
    assert h["loss"].iloc[-1] < h["loss"].iloc[0] and h["rewards/margins"].iloc[-1] > 0
    assert result.eval_history["eval_rewards/accuracies"].iloc[-1] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(lower, model.model.layers[0].parameters()))  # frozen
    with pytest.raises(TypeError, match="PreferenceCache"):
        dpo.train("not a cache")


def test_a_system_message_replaces_the_default_one(tiny):
    _, tok = tiny
    short = tokenize_preferences(tok, PROMPTS[:1], CHOSEN[:1], REJECTED[:1], system="Be brief.")
    full = tok.apply_chat_template([{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": PROMPTS[0]},
                                    {"role": "assistant", "content": CHOSEN[0]}], tokenize=False)
    assert short["prompt_input_ids"][0] + short["chosen_input_ids"][0] == tok(full, add_special_tokens=False)["input_ids"]
    default = tokenize_preferences(tok, PROMPTS[:1], CHOSEN[:1], REJECTED[:1])
    assert len(short["prompt_input_ids"][0]) < len(default["prompt_input_ids"][0])


def test_reset_top_restores_the_reference_and_encode_refuses_a_trained_policy(one_thread):
    from transformers import LlamaConfig, LlamaForCausalLM

    from rmcourse.models import load_tokenizer

    tok = load_tokenizer("smollm2")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    dpo = TopLayerDPO(LlamaForCausalLM(cfg).eval(), tok, trainable_layers=1, bf16=False)
    cache = dpo.encode(PROMPTS, CHOSEN, REJECTED, progress=False)
    dpo.train(cache, DPOConfig(learning_rate=2e-2, num_train_epochs=2, progress=False))
    cr, _ = dpo.rewards(cache)
    assert cr.abs().max() > 0
    with pytest.raises(RuntimeError, match="reset_top"):
        dpo.encode(PROMPTS, CHOSEN, REJECTED, progress=False)
    dpo.reset_top()
    cr, rr = dpo.rewards(cache)
    assert cr.abs().max() == 0 and rr.abs().max() == 0  # the policy is the reference again


def test_a_layout_it_was_not_written_for_is_named():
    from torch import nn

    from rmcourse.dpo import _check_layout

    class OldInner(nn.Module):  # transformers 4.x named the KV cache past_key_values
        def __init__(self):
            super().__init__()
            self.layers, self.norm = nn.ModuleList([nn.Linear(2, 2)]), nn.Identity()

        def forward(self, input_ids=None, past_key_values=None, inputs_embeds=None, position_ids=None,
                    use_cache=None, **kwargs):
            return None

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.lm_head = OldInner(), nn.Linear(2, 2)

    with pytest.raises(TypeError, match="no `cache=` argument"):
        _check_layout(OldInner())
    with pytest.raises(TypeError, match="transformers 5.x layout"):
        TopLayerDPO(Wrapper(), tokenizer=None)


def test_a_subset_of_the_cache_is_those_pairs(tiny):
    model, tok = tiny
    dpo = TopLayerDPO(model, tok, trainable_layers=1, bf16=False)
    cache = dpo.encode(PROMPTS, CHOSEN, REJECTED, progress=False)
    part = cache.subset([2, 0])
    assert len(part) == 2 and part.input_ids[1] is cache.input_ids[0] and part.hidden[2] is cache.hidden[5]
    assert torch.equal(part.ref_rejected_logps, cache.ref_rejected_logps[[2, 0]])
    c, r = dpo.rewards(part)
    assert c.abs().max() == 0 and r.abs().max() == 0
    with pytest.raises(ValueError, match="distinct indices in 0..2"):
        cache.subset([0, 3])
    with pytest.raises(ValueError, match="distinct"):
        cache.subset([1, 1])


def test_pair_batches_cover_every_pair_once_per_epoch_in_a_seeded_order():
    from rmcourse.dpo import pair_batches

    steps = list(pair_batches(10, 4, epochs=2, seed=3))
    assert [len(s) for s in steps] == [4, 4, 2, 4, 4, 2]
    first, second = sum(steps[:3], []), sum(steps[3:], [])
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert steps == list(pair_batches(10, 4, epochs=2, seed=3))
    assert steps != list(pair_batches(10, 4, epochs=2, seed=4))
