"""Prefix-shared packing (rmcourse.prefix_sharing) computes the stacked forward's rewards and
gradients: on a tiny random Llama (SDPA and eager attention) and on SmolLM2.

Tolerances (float32; measured on the course's 2-core AMD EPYC CPU, torch 2.13, transformers 5.24):
- rewards: 1e-4 absolute (measured: tiny Llama, rewards -0.85..0.86, max 3e-7; SmolLM2, rewards
  0.2..0.6, max 2e-6);
- gradients of the Bradley-Terry loss: per parameter, max |difference| <= 1e-3 x max |gradient|
  (measured: tiny Llama 6e-5; SmolLM2 4e-5, against 1.1e-4 between the stacked forward's own
  left- and right-padded gradients, which are equally right);
- bf16 autocast: packed and stacked rewards within 0.06 of each other and of float32 (measured:
  tiny Llama 0.009, SmolLM2 0.01-0.03; bf16 keeps ~3 significant digits through 30 layers).
"""
import pytest
import torch

from rmcourse.losses import pairwise_loss
from rmcourse.prefix_sharing import (PackedPairs, check_prefix_sharing, pack_pairs,
                                     packed_rewards, pair_mask_and_positions,
                                     prefix_shared_stacked_rewards, shared_prefix_length,
                                     token_savings, unpad_rows)
from rmcourse.tokenization import PairCollator, tokenize_pairs

REWARD_ATOL = 1e-4
GRAD_RTOL = 1e-3
BF16_ATOL = 0.06


@pytest.fixture(scope="module")
def smol_tokenizer():
    from rmcourse.models import load_tokenizer

    return load_tokenizer("smollm2")


def tiny_reward_model(tokenizer, attention="sdpa", seed=0):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rmcourse.models import RewardModel

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, attn_implementation=attention)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf = LlamaForSequenceClassification(config)
        # a random head gives rewards ~1e-2; scale it so the tolerances below mean something
        torch.nn.init.normal_(hf.score.weight, std=1.0)
    return RewardModel(hf, tokenizer).eval()


PAIRS = [  # different lengths; answers sharing their first word; one long prompt (cut at 64)
    {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "It is Lyon, I believe."},
    {"prompt": "Name a prime number.", "chosen": "Seven is prime.", "rejected": "Seven squared."},
    {"prompt": "Tell me about the sea. " * 12, "chosen": "It is salty and deep.", "rejected": "No."},
    {"prompt": "Hi", "chosen": "Hello! How can I help you today?", "rejected": "Hello."},
]


@pytest.fixture(scope="module")
def tokenized(smol_tokenizer):
    ds, report = tokenize_pairs(PAIRS, smol_tokenizer, 64)
    assert report.n_truncated == 1 and report.n_dropped == 0  # the long prompt is cut
    return ds.to_list()


def rewards_and_grads(model, fn):
    model.zero_grad(set_to_none=True)
    rewards = fn()
    b = rewards.shape[0] // 2
    pairwise_loss(rewards[:b], rewards[b:]).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return rewards.detach(), grads


def assert_grads_close(got, ref, rtol=GRAD_RTOL):
    assert got.keys() == ref.keys() and ref
    for name, g in ref.items():
        scale = float(g.abs().max())
        assert float((got[name] - g).abs().max()) <= rtol * scale + 1e-12, name


# ---------------------------------------------------------------- the mask and positions
def test_mask_and_positions_of_one_row():
    mask, pos = pair_mask_and_positions(3, 2, 2, width=9)
    assert pos.tolist() == [0, 1, 2, 3, 4, 3, 4, 0, 0]
    shared, chosen, rejected, pad = [0, 1, 2], [3, 4], [5, 6], [7, 8]
    # the rejected answer sees the shared part and itself, never the chosen answer
    assert mask[6].nonzero().flatten().tolist() == [0, 1, 2, 5, 6]
    assert mask[4].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    assert mask[2].nonzero().flatten().tolist() == [0, 1, 2]  # causal inside the shared part
    assert not mask[[*shared, *chosen, *rejected]][:, pad].any()  # no real token reads padding
    assert mask[7].nonzero().flatten().tolist() == [7]  # padding sees itself only: no empty row
    assert mask.any(dim=1).all()


def test_shared_prefix_length_keeps_one_token_per_answer():
    assert shared_prefix_length([1, 2, 3, 9], [1, 2, 3, 8, 8]) == 3
    assert shared_prefix_length([1, 2, 3], [1, 2, 3]) == 2  # identical rows: each keeps its last
    assert shared_prefix_length([1, 2], [1, 2, 3, 4]) == 1  # chosen is a prefix of rejected
    assert shared_prefix_length([5], [6, 7]) == 0


def test_pack_pairs_layout_and_token_count():
    packed = pack_pairs([[1, 2, 3, 9], [4, 5]], [[1, 2, 3, 8, 8], [4, 6, 6, 6]], pad_id=0)
    assert isinstance(packed, PackedPairs)
    assert packed.input_ids.tolist() == [[1, 2, 3, 9, 8, 8], [4, 5, 6, 6, 6, 0]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 3, 4], [0, 1, 1, 2, 3, 0]]
    assert packed.chosen_index.tolist() == [3, 1] and packed.rejected_index.tolist() == [5, 4]
    assert packed.attention_mask.shape == (2, 1, 6, 6)
    assert packed.n_shared == [3, 1]
    assert (packed.n_tokens, packed.n_tokens_separate) == (11, 15)
    assert packed.saved_share == pytest.approx(4 / 15)
    assert token_savings([[1, 2, 3, 9], [4, 5]], [[1, 2, 3, 8, 8], [4, 6, 6, 6]]) == {
        "tokens_separate": 15, "tokens_packed": 11, "saved_share": pytest.approx(4 / 15)}


# ---------------------------------------------------------------- exactness, tiny Llama
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rewards_and_gradients_equal_the_stacked_forward(smol_tokenizer, tokenized,
                                                               attention, one_thread):
    model = tiny_reward_model(smol_tokenizer, attention)
    assert model.hf.config._attn_implementation == attention
    results = {}
    for side in ("right", "left"):  # the reference with either padding side
        batch = PairCollator(smol_tokenizer, padding_side=side)(tokenized)
        results[side] = rewards_and_grads(model, lambda: model(**batch))
    (ref, ref_grads), (left, left_grads) = results["right"], results["left"]
    torch.testing.assert_close(left, ref, rtol=0, atol=REWARD_ATOL)
    assert_grads_close(left_grads, ref_grads)
    assert float(ref.std()) > 0.1  # rewards far apart relative to the tolerance
    batch = PairCollator(smol_tokenizer, padding_side="right")(tokenized)
    for chunk in (None, 2, 3):  # one forward, one pair per chunk, 1 pair (3 // 2) per chunk
        got, grads = rewards_and_grads(model, lambda: prefix_shared_stacked_rewards(model, batch,
                                                                                    chunk))
        torch.testing.assert_close(got, ref, rtol=0, atol=REWARD_ATOL)
        assert_grads_close(grads, ref_grads)


def test_a_leaky_mask_or_wrong_positions_change_the_rewards(smol_tokenizer, tokenized, one_thread):
    """The control: the tests above could not pass with a wrong mask or wrong positions."""
    model = tiny_reward_model(smol_tokenizer)
    batch = PairCollator(smol_tokenizer)(tokenized)
    rows = unpad_rows(batch)
    b = len(rows) // 2
    pad = smol_tokenizer.pad_token_id
    with torch.no_grad():
        ref = model(**batch)
        right = pack_pairs(rows[:b], rows[b:], pad)
        c, r = packed_rewards(model, right)
        torch.testing.assert_close(torch.cat([c, r]), ref, rtol=0, atol=REWARD_ATOL)
        leaky = pack_pairs(rows[:b], rows[b:], pad)
        leaky.attention_mask |= torch.tril(torch.ones_like(leaky.attention_mask[0, 0]))
        _, r_leaky = packed_rewards(model, leaky)
        shifted = pack_pairs(rows[:b], rows[b:], pad)
        shifted.position_ids = torch.arange(shifted.input_ids.shape[1]).expand_as(shifted.input_ids)
        _, r_shifted = packed_rewards(model, shifted)
    assert float((r_leaky - ref[b:]).abs().max()) > 100 * REWARD_ATOL
    assert float((r_shifted - ref[b:]).abs().max()) > 100 * REWARD_ATOL


def test_bf16_autocast_on_the_tiny_llama(smol_tokenizer, tokenized, one_thread):
    from rmcourse.device import float32_readout

    model = tiny_reward_model(smol_tokenizer)
    float32_readout(model.hf.score)
    batch = PairCollator(smol_tokenizer)(tokenized)
    with torch.no_grad():
        ref32 = model(**batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref = model(**batch)
            got = prefix_shared_stacked_rewards(model, batch)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=BF16_ATOL)
    torch.testing.assert_close(got, ref32, rtol=0, atol=BF16_ATOL)


# ---------------------------------------------------------------- refusals
def test_an_encoder_is_refused_with_the_reason(one_thread):
    from transformers import BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel, load_tokenizer

    tok = load_tokenizer("minilm")
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=1)
    encoder = RewardModel(BertForSequenceClassification(config), tok)
    with pytest.raises(ValueError, match="not exact for an encoder.*prompt's hidden states depend"):
        check_prefix_sharing(encoder)
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long),
             "attention_mask": torch.ones(2, 3, dtype=torch.long),
             "token_type_ids": torch.zeros(2, 3, dtype=torch.long)}
    with pytest.raises(ValueError, match="encoder"):
        prefix_shared_stacked_rewards(encoder, batch)


def test_pitfall_mode_foreign_models_and_flash_attention_are_refused(smol_tokenizer):
    from rmcourse.models import make_pad_equal_eos

    with pytest.raises(TypeError, match="RewardModel"):
        check_prefix_sharing(torch.nn.Linear(2, 1))
    model = tiny_reward_model(smol_tokenizer)
    model.hf.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="4D attention mask.*flash_attention_2"):
        check_prefix_sharing(model)
    from copy import deepcopy

    pitfall = make_pad_equal_eos(tiny_reward_model(deepcopy(smol_tokenizer)))
    with pytest.raises(ValueError, match="pad == eos"):
        check_prefix_sharing(pitfall)


def test_bad_inputs_are_named(smol_tokenizer):
    with pytest.raises(ValueError, match="n_chosen must be >= 1"):
        pair_mask_and_positions(3, 0, 2)
    with pytest.raises(ValueError, match="width=4 is shorter"):
        pair_mask_and_positions(3, 1, 1, width=4)
    with pytest.raises(TypeError, match="n_shared must be an int"):
        pair_mask_and_positions(1.5, 1, 1)
    with pytest.raises(ValueError, match="no pairs"):
        pack_pairs([], [], 0)
    with pytest.raises(ValueError, match="2 chosen rows but 1 rejected"):
        pack_pairs([[1], [2]], [[1]], 0)
    with pytest.raises(ValueError, match="rejected row 0 is empty"):
        pack_pairs([[1]], [[]], 0)
    with pytest.raises(TypeError, match="token ids are ints"):
        pack_pairs([[1, "a"]], [[1, 2]], 0)
    with pytest.raises(TypeError, match="lists of token-id lists"):
        pack_pairs("abc", "abd", 0)
    with pytest.raises(ValueError, match="pad_id"):
        pack_pairs([[1]], [[2]], -1)
    model = tiny_reward_model(smol_tokenizer)
    with pytest.raises(ValueError, match="vocabulary"):
        packed_rewards(model, pack_pairs([[1, 10**7]], [[1, 2]], 0))
    with pytest.raises(TypeError, match="PackedPairs"):
        packed_rewards(model, {"input_ids": torch.ones(1, 2)})
    odd = {"input_ids": torch.ones(3, 2, dtype=torch.long),
           "attention_mask": torch.ones(3, 2, dtype=torch.long)}
    with pytest.raises(ValueError, match="2B rows"):
        prefix_shared_stacked_rewards(model, odd)


# ---------------------------------------------------------------- SmolLM2
SMOL_PAIRS = [
    {"prompt": "Human: hi\n\nAssistant: Hello!\n\nHuman: What is the capital of France? " * 3,
     "chosen": "Paris.", "rejected": "It is Lyon, I think."},
    {"prompt": "Name a prime number.", "chosen": "Seven.", "rejected": "Seven squared."},
]


@pytest.fixture(scope="module")
def smol():
    from rmcourse.models import load_reward_model

    model = load_reward_model("smollm2", device="cpu", max_length=64)
    return model.eval()


def test_smollm2_packed_rewards_and_gradients_equal_the_stacked_forward(smol):
    ds, report = tokenize_pairs(SMOL_PAIRS, smol.tokenizer, 64)
    assert report.n_truncated == 1
    rows = ds.to_list()
    with torch.no_grad():  # the left-padded reference (forward only: a backward costs ~10 s)
        left = smol(**PairCollator(smol.tokenizer, padding_side="left")(rows))
    ref, ref_grads = rewards_and_grads(smol, lambda: smol(**PairCollator(smol.tokenizer)(rows)))
    torch.testing.assert_close(left, ref, rtol=0, atol=REWARD_ATOL)
    batch = PairCollator(smol.tokenizer)(rows)
    got, grads = rewards_and_grads(smol, lambda: prefix_shared_stacked_rewards(smol, batch))
    torch.testing.assert_close(got, ref, rtol=0, atol=REWARD_ATOL)
    assert_grads_close(grads, ref_grads)
    assert float((ref[:2] - ref[2:]).abs().min()) > 100 * REWARD_ATOL  # the pairs are told apart
    smol.zero_grad(set_to_none=True)

    from rmcourse.device import float32_readout

    float32_readout(smol.hf.score)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_ref = smol(**batch)
        bf16_got = prefix_shared_stacked_rewards(smol, batch)
    torch.testing.assert_close(bf16_got, bf16_ref, rtol=0, atol=BF16_ATOL)
    torch.testing.assert_close(bf16_got, ref, rtol=0, atol=BF16_ATOL)


# ---------------------------------------------------------------- the trainer and the CLI
def test_training_steps_with_and_without_prefix_sharing_give_the_same_weights(smol_tokenizer,
                                                                             one_thread):
    from rmcourse.trainer import TrainConfig, train_reward_model

    weights, losses = {}, {}
    start = {n: p.detach().clone() for n, p in tiny_reward_model(smol_tokenizer).named_parameters()}
    for sharing in (False, True):
        model = tiny_reward_model(smol_tokenizer)
        config = TrainConfig(max_steps=2, batch_size=4, lr=1e-3, max_length=64, progress=False,
                             prefix_sharing=sharing)
        result = train_reward_model(model, PAIRS, None, config)
        weights[sharing] = {n: p.detach().clone() for n, p in model.named_parameters()}
        losses[sharing] = result.history["loss"].tolist()
    # measured: weights within 1.6e-6 after 2 AdamW steps of lr 1e-3 that moved them by 1.5e-3
    tolerance = 2e-5
    moved = max(float((weights[False][n] - start[n]).abs().max()) for n in start)
    assert moved > 50 * tolerance
    for name in start:
        torch.testing.assert_close(weights[True][name], weights[False][name], rtol=0,
                                   atol=tolerance, msg=name)
    assert losses[True] == pytest.approx(losses[False], abs=1e-5)


def test_the_trainer_packs_a_decoder_automatically_and_never_an_encoder(smol_tokenizer,
                                                                        monkeypatch):
    from transformers import BertConfig, BertForSequenceClassification

    import rmcourse.trainer as trainer
    from rmcourse.models import RewardModel, load_tokenizer
    from rmcourse.prefix_sharing import resolve_prefix_sharing
    from rmcourse.trainer import TrainConfig

    decoder = tiny_reward_model(smol_tokenizer)
    tok = load_tokenizer("minilm")
    encoder = RewardModel(BertForSequenceClassification(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=1)), tok)
    assert TrainConfig().prefix_sharing == "auto"
    assert resolve_prefix_sharing("auto", decoder) is True
    assert resolve_prefix_sharing("auto", encoder) is False
    assert resolve_prefix_sharing("auto", decoder, world_size=2) is False
    assert resolve_prefix_sharing(False, decoder) is False
    with pytest.raises(ValueError, match="not exact for an encoder"):
        resolve_prefix_sharing(True, encoder)
    with pytest.raises(ValueError, match="DistributedDataParallel"):
        resolve_prefix_sharing(True, decoder, world_size=2)
    with pytest.raises(ValueError, match="prefix_sharing must be True, False or 'auto'"):
        TrainConfig(prefix_sharing="yes")
    calls = []
    real = trainer.prefix_shared_stacked_rewards
    monkeypatch.setattr(trainer, "prefix_shared_stacked_rewards",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    config = TrainConfig(max_steps=1, batch_size=2, max_length=64, progress=False)
    trainer.train_reward_model(decoder, PAIRS, None, config)
    assert calls == [1]
    with pytest.raises(ValueError, match="not exact for an encoder"):
        trainer.train_reward_model(encoder, PAIRS, None,
                                   TrainConfig(max_steps=1, batch_size=2, max_length=64,
                                               progress=False, prefix_sharing=True))


def test_the_cli_says_what_it_does(smol_tokenizer):
    from rmcourse.models import make_pad_equal_eos
    from rmcourse.train import build_parser, describe_choices
    from rmcourse.trainer import TrainConfig

    cpu = torch.device("cpu")
    decoder = tiny_reward_model(smol_tokenizer)
    line = describe_choices(TrainConfig(), cpu, model=decoder)
    assert line.endswith("; prefix sharing: on (--prefix-sharing auto; decoder: each pair is one "
                         "row [prompt | chosen | rejected], its prompt computed once, the same "
                         "rewards)")
    assert describe_choices(TrainConfig(prefix_sharing=False), cpu, model=decoder).endswith(
        "prefix sharing: off (--prefix-sharing off)")
    assert describe_choices(TrainConfig(), cpu, 2, model=decoder).endswith(
        "off (--prefix-sharing auto; 2 processes: not under DDP)")
    from copy import deepcopy

    pitfall = make_pad_equal_eos(tiny_reward_model(deepcopy(smol_tokenizer)))
    assert "pad == eos" in describe_choices(TrainConfig(), cpu, model=pitfall)
    assert "prefix sharing" not in describe_choices(TrainConfig(), cpu)
    parser = build_parser()
    assert parser.parse_args(["--data", "x"]).prefix_sharing == "auto"
    assert parser.parse_args(["--data", "x", "--prefix-sharing", "off"]).prefix_sharing == "off"
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "x", "--prefix-sharing", "maybe"])
