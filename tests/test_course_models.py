"""course_reward_model: trained once, then reused; retrained only when the recipe changed.

The real recipe trains MiniLM for a minute, too slow for a unit test, so these tests swap in a
tiny recipe whose base model is a tiny random BERT saved to a temporary folder.
"""
import json

import matplotlib
import pytest
import torch

import rmcourse.course_models as cm
from rmcourse.models import METADATA_FILE, RewardModel, bundled_model_path
from rmcourse.trainer import TrainConfig

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=160,
                        num_labels=1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    RewardModel(BertForSequenceClassification(config), tokenizer).save_pretrained(path)
    return str(path)


@pytest.fixture
def tiny_recipe(tiny_base, tmp_path, monkeypatch):
    """Artifacts go to a temporary folder; course_recipe() returns a 2-step recipe."""
    monkeypatch.setenv("RMCOURSE_ARTIFACTS", str(tmp_path / "artifacts"))
    recipe = cm.CourseRecipe(n_train=8, n_val=4, n_test=4, base_model=tiny_base,
                             config=TrainConfig(lr=1e-3, batch_size=4, max_steps=2,
                                                eval_every=2, progress=False))
    monkeypatch.setattr(cm, "course_recipe", lambda progress=True: recipe)
    return recipe


@pytest.fixture
def count_training(monkeypatch):
    calls = []
    real = cm.train_course_reward_model

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cm, "train_course_reward_model", counted)
    return calls


def test_trains_once_then_loads_the_checkpoint(tiny_recipe, count_training, capsys):
    first = cm.course_reward_model()
    assert count_training == [1] and "none saved yet" in capsys.readouterr().out
    path = cm.course_checkpoint_dir()
    info = json.loads((path / METADATA_FILE).read_text())
    assert info["metadata"]["course_recipe"] == tiny_recipe.to_dict()
    assert [row["step"] for row in info["metadata"]["history"]] == [1, 2]
    assert info["metadata"]["history"][0]["val_accuracy"] is None  # NaN stored as null

    second, stored = cm.course_reward_model(return_result=True)
    assert count_training == [1]  # loaded, not retrained
    assert "loaded the chapter-03 reward model" in capsys.readouterr().out
    prompts, responses = ["Say hi.", "Name a fruit."], ["Hi!", "An apple."]
    torch.testing.assert_close(first.score(prompts, responses), second.score(prompts, responses))
    assert not second.training
    # the stored result is the training run's: same history, same summary numbers
    assert stored.n_steps == 2 and stored.n_train_pairs == 8 and stored.best_step == 2
    assert stored.train_seconds > 0 and stored.config == tiny_recipe.config
    assert stored.history["val_accuracy"].isna().tolist() == [True, False]
    fig = stored.plot()
    assert len(fig.axes) == 3


def test_return_result_after_training_is_the_live_result(tiny_recipe, count_training):
    model, result = cm.course_reward_model(return_result=True)
    _, stored = cm.course_reward_model(return_result=True)
    assert count_training == [1]
    import pandas as pd

    pd.testing.assert_frame_equal(result.history, stored.history, check_dtype=False)
    assert (stored.best_step, stored.best_val_accuracy) == (result.best_step,
                                                            result.best_val_accuracy)


def test_a_changed_recipe_or_retrain_trains_again(tiny_recipe, count_training, monkeypatch,
                                                  capsys):
    cm.course_reward_model()
    cm.course_reward_model(retrain=True)
    assert count_training == [1, 1]
    changed = cm.CourseRecipe(n_train=8, n_val=4, n_test=4, base_model=tiny_recipe.base_model,
                              config=TrainConfig(lr=2e-3, batch_size=4, max_steps=2,
                                                 eval_every=2, progress=False))
    monkeypatch.setattr(cm, "course_recipe", lambda progress=True: changed)
    capsys.readouterr()
    cm.course_reward_model()
    assert count_training == [1, 1, 1] and "another recipe" in capsys.readouterr().out


def test_an_unreadable_checkpoint_is_rebuilt(tiny_recipe, count_training, capsys):
    cm.course_reward_model()
    (cm.course_checkpoint_dir() / "model.safetensors").write_bytes(b"not a model")
    model = cm.course_reward_model()
    assert count_training == [1, 1] and "could not be loaded" in capsys.readouterr().out
    assert model.score(["Hi"], ["Hello"]).shape == (1,)


def test_recipe_identity_and_defaults():
    recipe = cm.course_recipe(progress=False)
    assert recipe.to_dict() == cm.course_recipe(progress=True).to_dict()  # progress is not identity
    json.dumps(recipe.to_dict())
    assert recipe.config.epochs == 1.0 and recipe.config.max_steps is None
    assert recipe.version == cm.RECIPE_VERSION and recipe.base_model == "minilm"
    if not torch.cuda.is_available():
        assert (recipe.n_train, recipe.config.batch_size, recipe.frozen_layers) == (256, 8, 2)
    else:
        assert recipe.frozen_layers == 0  # a GPU trains every layer
    changed = cm.CourseRecipe(**{**vars(recipe), "frozen_layers": recipe.frozen_layers + 1})
    assert changed.to_dict() != recipe.to_dict()  # freezing is part of the identity
    assert recipe.pooling == "first" and recipe.to_dict()["pooling"] == "first"
    mean = cm.CourseRecipe(**{**vars(recipe), "pooling": "mean"})
    assert mean.to_dict() != recipe.to_dict()  # so is pooling


def test_the_gpu_recipe_is_bigger_and_trains_every_layer(monkeypatch):
    import rmcourse.device as device

    monkeypatch.setattr(device, "on_gpu", lambda: False)
    cpu = cm.course_recipe(progress=False)
    monkeypatch.setattr(device, "on_gpu", lambda: True)
    gpu = cm.course_recipe(progress=False)
    assert gpu.frozen_layers == 0 and gpu.n_train > cpu.n_train and gpu.n_test > cpu.n_test
    assert gpu.config.batch_size > cpu.config.batch_size
    # full fine-tuning on a GPU uses BERT's fine-tuning range; the short frozen CPU run a larger lr
    assert 2e-5 <= gpu.config.lr <= 5e-5 < cpu.config.lr
    assert gpu.to_dict() != cpu.to_dict()  # a CPU checkpoint is never taken for the GPU recipe


def test_frozen_layers_of_the_recipe_stay_at_their_initial_weights(tiny_recipe, tiny_base):
    recipe = cm.CourseRecipe(**{**vars(tiny_recipe), "frozen_layers": 1})
    model, result = cm.train_course_reward_model(recipe, save=False, progress=False)
    base = RewardModel.from_pretrained(tiny_base)
    trained = dict(model.named_parameters())
    for name, param in base.named_parameters():
        same = torch.equal(param, trained[name].detach().cpu())
        if ".embeddings." in name or ".layer.0." in name:
            assert same, f"{name} should be frozen"
        elif name.endswith("classifier.weight"):
            assert not same, "the reward head did not train"
    assert result.n_steps == 2


def test_the_recipe_pooling_reaches_the_model_and_its_checkpoint(tiny_recipe, monkeypatch):
    mean = cm.CourseRecipe(**{**vars(tiny_recipe), "pooling": "mean"})
    monkeypatch.setattr(cm, "course_recipe", lambda progress=True: mean)
    model = cm.course_reward_model()
    assert model.pooling == "mean"
    again = cm.course_reward_model()  # loaded: the checkpoint keeps its pooling
    assert again.pooling == "mean"
    prompts, responses = ["Say hi."], ["Hi there, friend!"]
    torch.testing.assert_close(model.score(prompts, responses), again.score(prompts, responses))


def test_splits_follow_the_recipe(tiny_recipe):
    splits = cm.course_splits(tiny_recipe)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 4, "test": 4}
    test = splits["test"].to_pandas()
    assert (test["chosen_gold"] > test["rejected_gold"]).all()  # the clean split
    with pytest.raises(TypeError, match="CourseRecipe"):
        cm.course_splits({"n_train": 8})
    with pytest.raises(ValueError, match="splits do not match the recipe"):
        cm.train_course_reward_model(tiny_recipe, save=False,
                                     splits={"train": splits["test"], "val": splits["val"]})
    with pytest.raises(ValueError, match="missing \\['val'\\]"):
        cm.train_course_reward_model(tiny_recipe, save=False, splits={"train": splits["train"]})
    with pytest.raises(TypeError, match="retrain"):
        cm.course_reward_model(retrain="yes")
    with pytest.raises(TypeError, match="return_result"):
        cm.course_reward_model(return_result=1)


# ---------------------------------------------------------------- seed errata 1
def _tiny_bert(seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=60, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=1)
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def test_seed_double_head_leaves_pooler_and_classifier_without_gradient():
    model = cm.SeedDoubleHeadRewardModel(_tiny_bert(), dropout=0.0).eval()  # no dropout noise
    ids = torch.randint(1, 60, (3, 5))
    mask = torch.ones_like(ids)
    rewards = model(ids, mask)
    assert rewards.shape == (3,)
    rewards.sum().backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    assert no_grad == {"backbone.bert.pooler.dense.weight", "backbone.bert.pooler.dense.bias",
                       "backbone.classifier.weight", "backbone.classifier.bias"}
    with torch.no_grad():
        model.backbone.classifier.weight.add_(5.0)  # changing the dead head changes nothing
        torch.testing.assert_close(model(ids, mask), rewards.detach())
    hidden = model.backbone.config.hidden_size
    assert cm.count_parameters(model) == cm.count_parameters(model.backbone) + hidden + 1
    model.backbone.requires_grad_(False)
    assert cm.count_parameters(model, trainable_only=True) == hidden + 1
    with pytest.raises(TypeError, match="torch.nn.Module"):
        cm.count_parameters([1, 2])
    with pytest.raises(ValueError, match="dropout"):
        cm.SeedDoubleHeadRewardModel(_tiny_bert(), dropout=1.5)


# ---------------------------------------------------------------- playground
class _FakeModel:
    def score(self, prompts, responses):
        return torch.tensor([float(len(r)) for r in responses])


def test_compare_responses_gives_rewards_and_bt_probability():
    out = cm.compare_responses(_FakeModel(), "Q", "long answer", "short")
    assert out["reward_a"] == 11.0 and out["reward_b"] == 5.0
    assert out["p_a_over_b"] == pytest.approx(1 / (1 + torch.exp(torch.tensor(-6.0)).item()))
    with pytest.raises(ValueError, match="empty text in response_b"):
        cm.compare_responses(_FakeModel(), "Q", "a", "  ")
    with pytest.raises(TypeError, match="prompt must be a str"):
        cm.compare_responses(_FakeModel(), None, "a", "b")
    with pytest.raises(TypeError, match="RewardModel"):
        cm.compare_responses(object(), "Q", "a", "b")


def test_playground_opens_scored_and_scores_on_click():
    box = cm.reward_playground(_FakeModel(), "Q", "abc", "a")
    prompt, a, b, button, out = box.children
    assert (prompt.value, a.value, b.value) == ("Q", "abc", "a")
    assert len(out.outputs) == 1 and "reward(A) = +3.000" in out.outputs[0]["text"]  # already scored
    a.value = "abcd"
    button.click()
    assert len(out.outputs) == 1 and "reward(A) = +4.000" in out.outputs[0]["text"]
    assert cm.reward_playground(_FakeModel(), "Q").children[-1].outputs == ()  # nothing to score
    b.value = ""
    button.click()
    assert "cannot score: empty text in response_b" in out.outputs[0]["text"]
