"""rmcourse.freezing: which parameters freeze, that training leaves them untouched, bad input."""
import pytest
import torch
from datasets import Dataset
from torch import nn

from rmcourse.freezing import backbone_parts, freeze_lower_layers, trainable_fraction
from rmcourse.models import RewardModel, bundled_model_path
from rmcourse.trainer import TrainConfig, make_optimizer, train_reward_model


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])


def tiny_bert(tokenizer, layers=3):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                        num_labels=1)
    torch.manual_seed(0)
    return RewardModel(BertForSequenceClassification(config), tokenizer, max_length=48)


def numel(module):
    return sum(p.numel() for p in module.parameters())


def test_freezes_embeddings_and_the_lowest_layers_only(tokenizer):
    model = tiny_bert(tokenizer)
    bert = model.hf.bert
    frozen = freeze_lower_layers(model, 2)
    assert frozen == numel(bert.embeddings) + numel(bert.encoder.layer[0]) + numel(bert.encoder.layer[1])
    for module in (bert.embeddings, bert.encoder.layer[0], bert.encoder.layer[1]):
        assert not any(p.requires_grad for p in module.parameters())
    for module in (bert.encoder.layer[2], bert.pooler, model.hf.classifier):
        assert all(p.requires_grad for p in module.parameters())
    total = numel(model)
    assert trainable_fraction(model) == pytest.approx((total - frozen) / total)
    assert freeze_lower_layers(model, 2) == 0  # already frozen: nothing more to do


def test_embeddings_can_stay_trainable_and_zero_layers_is_allowed(tokenizer):
    model = tiny_bert(tokenizer)
    assert freeze_lower_layers(model, 0, embeddings=False) == 0
    assert trainable_fraction(model) == 1.0
    assert freeze_lower_layers(model, 1, embeddings=False) == numel(model.hf.bert.encoder.layer[0])
    assert all(p.requires_grad for p in model.hf.bert.embeddings.parameters())


def test_training_moves_only_the_unfrozen_weights(tokenizer):
    model = tiny_bert(tokenizer)
    freeze_lower_layers(model, 2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = make_optimizer(model, TrainConfig(progress=False))
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    pairs = Dataset.from_list([{"prompt": "Is it good?", "chosen": f"Yes, it is good {i}.",
                                "rejected": f"No, it is bad {i}."} for i in range(8)])
    train_reward_model(model, pairs, None, TrainConfig(lr=1e-2, batch_size=4, max_steps=2,
                                                       max_length=48, progress=False))
    for name, param in model.named_parameters():
        changed = not torch.equal(param.detach(), before[name])
        if ".embeddings." in name or ".layer.0." in name or ".layer.1." in name:
            assert not changed, f"frozen {name} moved"
        elif name.endswith("layer.2.output.LayerNorm.bias") or name.endswith("classifier.bias"):
            # No assertion: the head's bias shifts r_chosen and r_rejected equally (zero gradient
            # up to rounding), and the last LayerNorm's bias reaches the reward only through the
            # pooler's tanh curvature (a gradient about 200 times smaller than its LayerNorm
            # weight's at this init). Whether
            # Adam turns such a near-zero gradient into a step depends on the precision: it
            # rounds to exactly zero under bf16 autocast and not in float32.
            continue
        elif name.endswith("classifier.weight") or ".layer.2." in name:
            assert changed, f"trainable {name} did not move"


def test_llama_style_decoders_are_understood():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=1,
                         pad_token_id=0)
    model = LlamaForSequenceClassification(config)
    embed, layers = backbone_parts(model)
    assert embed is model.model.embed_tokens and len(layers) == 2
    assert freeze_lower_layers(model, 1) == numel(embed) + numel(layers[0])
    assert model.score.weight.requires_grad


@pytest.mark.parametrize("n_layers, error, words", [
    (4, ValueError, "n_layers must be in [0, 3]"),
    (-1, ValueError, "n_layers must be in [0, 3]"),
    (True, TypeError, "n_layers must be an int"),
    (1.0, TypeError, "n_layers must be an int"),
])
def test_bad_layer_counts_name_the_problem(tokenizer, n_layers, error, words):
    model = tiny_bert(tokenizer)
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        freeze_lower_layers(model, n_layers)
    assert trainable_fraction(model) == 1.0  # a refused call freezes nothing


def test_unknown_architectures_and_non_modules_are_refused():
    with pytest.raises(ValueError, match="unknown architecture Linear"):
        freeze_lower_layers(nn.Linear(2, 1), 0)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        backbone_parts("minilm")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        trainable_fraction(object())
    with pytest.raises(ValueError, match="no parameters"):
        trainable_fraction(nn.Sequential())
