"""Pooling picks the first/last REAL token from the attention mask, whatever the padding side."""
import pytest
import torch

from rmcourse.pooling import first_token_index, first_token_pool, last_token_index, last_token_pool

# Three sequences of real lengths 3, 5, 1 in a batch of width 5.
LENGTHS = [3, 5, 1]
WIDTH = 5


def _batch(side: str):
    """hidden[b, t] = the vector (value, value) where value identifies the REAL token k of row b
    as 10*b + k; pads hold -1, so pooling a pad is visible."""
    hidden = torch.full((len(LENGTHS), WIDTH, 2), -1.0)
    mask = torch.zeros(len(LENGTHS), WIDTH, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        start = 0 if side == "right" else WIDTH - n
        for k in range(n):
            hidden[b, start + k] = 10 * b + k
        mask[b, start : start + n] = 1
    return hidden, mask


@pytest.mark.parametrize("side", ["right", "left"])
def test_first_token_is_the_first_real_token(side):
    hidden, mask = _batch(side)
    pooled = first_token_pool(hidden, mask)
    assert pooled.shape == (3, 2)
    assert pooled[:, 0].tolist() == [0.0, 10.0, 20.0]


@pytest.mark.parametrize("side", ["right", "left"])
def test_last_token_is_the_last_real_token(side):
    hidden, mask = _batch(side)
    pooled = last_token_pool(hidden, mask)
    assert pooled[:, 0].tolist() == [2.0, 14.0, 20.0]


def test_same_vectors_under_both_padding_sides():
    right = last_token_pool(*_batch("right"))
    left = last_token_pool(*_batch("left"))
    assert torch.equal(right, left)
    assert torch.equal(first_token_pool(*_batch("right")), first_token_pool(*_batch("left")))


def test_indices():
    _, mask = _batch("left")
    assert last_token_index(mask).tolist() == [4, 4, 4]
    assert first_token_index(mask).tolist() == [2, 0, 4]
    _, mask = _batch("right")
    assert last_token_index(mask).tolist() == [2, 4, 0]
    assert first_token_index(mask).tolist() == [0, 0, 0]


def test_mask_not_pad_id_decides():
    # A "pad-looking" real token (eos == pad) still counts when the mask says it is real.
    hidden = torch.arange(4, dtype=torch.float32).view(1, 4, 1)
    mask = torch.tensor([[1, 1, 1, 0]])
    assert last_token_pool(hidden, mask).item() == 2.0


def test_gradient_flows_to_the_pooled_position():
    hidden, mask = _batch("left")
    hidden.requires_grad_(True)
    last_token_pool(hidden, mask).sum().backward()
    assert hidden.grad[:, -1].abs().sum() > 0
    assert hidden.grad[:, :-1].abs().sum() == 0


@pytest.mark.parametrize(
    "hidden, mask, err, msg",
    [
        (torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.long), ValueError, "3-D"),
        (torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.long), ValueError, "attention_mask"),
        (torch.zeros(2, 3, 4), torch.ones(3, dtype=torch.long), ValueError, "2-D"),
        (torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [0, 0, 0]]), ValueError, "no real token in row 1"),
        (torch.zeros(1, 3, 4), torch.tensor([[1, 2, 0]]), ValueError, "only 0 and 1"),
        ([[0.0]], torch.ones(1, 1, dtype=torch.long), TypeError, "hidden"),
        (torch.zeros(1, 1, 1), [[1]], TypeError, "attention_mask"),
    ],
)
def test_bad_inputs(hidden, mask, err, msg):
    for fn in (first_token_pool, last_token_pool):
        with pytest.raises(err, match=msg):
            fn(hidden, mask)


# --- mean pooling ---------------------------------------------------------------------------------
from rmcourse.pooling import mean_pool  # noqa: E402


@pytest.mark.parametrize("side", ["right", "left"])
def test_mean_pool_averages_the_real_tokens_only(side):
    hidden, mask = _batch(side)  # real token k of row b holds 10 b + k, pads hold -1
    pooled = mean_pool(hidden, mask)
    assert pooled.shape == (3, 2)
    assert pooled[:, 0].tolist() == [1.0, 12.0, 20.0]  # means of 0..2, 10..14, 20


def test_mean_pool_bool_mask_bf16_and_gradient():
    hidden, mask = _batch("left")
    torch.testing.assert_close(mean_pool(hidden, mask.bool()), mean_pool(hidden, mask))
    low = mean_pool(hidden.bfloat16(), mask)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), mean_pool(hidden, mask), atol=0.1, rtol=0.01)
    hidden.requires_grad_(True)
    mean_pool(hidden, mask).sum().backward()
    assert hidden.grad[mask == 0].abs().sum() == 0  # pads take no part
    assert torch.allclose(hidden.grad[0, 2:], torch.full((3, 2), 1 / 3))


def test_mean_pool_bad_inputs():
    with pytest.raises(ValueError, match="no real token in row 1"):
        mean_pool(torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="3-D"):
        mean_pool(torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.long))


# --- RewardModel(pooling="mean") on a tiny random BERT --------------------------------------------
def _tiny_reward_model(pooling):
    from transformers import BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel, load_tokenizer

    tokenizer = load_tokenizer("minilm")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    return RewardModel(BertForSequenceClassification(config), tokenizer, max_length=64,
                       pooling=pooling).eval()


PROMPTS = ["How do I boil an egg?", "Name a fruit."]
RESPONSES = ["Simmer it for nine minutes, then cool it in cold water.", "A pear."]


def _batch_of(model):
    from rmcourse.tokenization import encode_pair_texts, pad_batch

    ids, types, _ = encode_pair_texts(model.tokenizer, PROMPTS, RESPONSES, max_length=64,
                                      return_token_type_ids=True)
    return ids, types, pad_batch(model.tokenizer, ids, types, padding_side="right")


def test_mean_pooled_reward_is_the_head_on_the_masked_mean():
    model = _tiny_reward_model("mean")
    assert model.pooling == "mean"
    _, _, batch = _batch_of(model)
    with torch.no_grad():
        rewards = model(**batch)
        hidden = model.hf.bert(**batch).last_hidden_state
        pooler = model.hf.bert.pooler
        manual = model.hf.classifier(pooler.activation(pooler.dense(
            mean_pool(hidden, batch["attention_mask"])))).squeeze(-1)
        first = model.hf(**batch).logits.squeeze(-1)  # what transformers alone computes: [CLS]
    torch.testing.assert_close(rewards, manual)
    assert not torch.allclose(rewards, first, atol=1e-4)


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_encoder_rewards_do_not_depend_on_right_padding(pooling):
    from rmcourse.tokenization import pad_batch

    model = _tiny_reward_model(pooling)
    ids, types, batch = _batch_of(model)
    assert batch["attention_mask"][1].sum() < batch["attention_mask"].shape[1]  # row 1 is padded
    with torch.no_grad():
        together = model(**batch)
        alone = torch.cat([model(**pad_batch(model.tokenizer, [i], [t], padding_side="right"))
                           for i, t in zip(ids, types)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_mean_pooling_trains_every_parameter_and_survives_a_reload(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from rmcourse.models import METADATA_FILE, RewardModel, load_reward_model

    model = _tiny_reward_model("mean")
    _, _, batch = _batch_of(model)
    model(**batch).sum().backward()
    assert all(p.grad is not None for p in model.parameters())  # no dead pooler
    model.save_pretrained(tmp_path / "rm")
    assert '"pooling": "mean"' in (tmp_path / "rm" / METADATA_FILE).read_text()
    again = RewardModel.from_pretrained(tmp_path / "rm").eval()
    assert again.pooling == "mean"
    with torch.no_grad():
        torch.testing.assert_close(again(**batch), model(**batch))
        plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
        assert not torch.allclose(plain(**batch).logits.squeeze(-1), model(**batch), atol=1e-4)
    assert load_reward_model(tmp_path / "rm", pooling="first").pooling == "first"


def test_pooling_argument_is_checked():
    from rmcourse.models import RewardModel

    model = _tiny_reward_model(None)
    assert model.pooling == "first"
    with pytest.raises(ValueError, match="unknown pooling 'avg'"):
        RewardModel(model.hf, model.tokenizer, pooling="avg")
    with pytest.raises(ValueError, match="pooling='last' on an encoder"):
        RewardModel(model.hf, model.tokenizer, pooling="last")
    with pytest.raises(TypeError, match="pooling must be a str"):
        RewardModel(model.hf, model.tokenizer, pooling=1)


def test_mean_pooling_is_refused_for_a_decoder():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rmcourse.models import RewardModel, load_tokenizer

    tokenizer = load_tokenizer("minilm")  # any tokenizer with a pad token will do here
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         num_labels=1, pad_token_id=tokenizer.pad_token_id)
    with pytest.raises(ValueError, match="on a decoder"):
        RewardModel(LlamaForSequenceClassification(config), tokenizer, pooling="mean")
