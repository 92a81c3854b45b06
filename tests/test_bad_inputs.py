"""The bad-input sweep: every public entry point, given missing, empty, wrongly typed, NaN,
out-of-range, mixed and corrupted input, raises rmcourse's own ValueError / TypeError /
FileNotFoundError naming the problem, and never loses data.

The classes (one fix each, not one per case):
- numbers: strings, booleans, None and NaN/inf are refused by one validator
  (`rmcourse.validation`), so no NaN reaches a score and no percentage mixes with fractions;
- files: JSON, JSON Lines, CSV and Parquet are read by rmcourse, which names the file and the
  line of a broken row; a folder never mixes splits;
- formats: HH transcripts without an Assistant turn, unknown chat roles and responses that are
  not the assistant's are errors, not silently re-read as something else; a null is missing;
- checkpoints: missing tokenizer, missing or damaged weights, damaged config/metadata, a folder
  that is not a reward model, and a device the machine lacks are named before loading;
- model inputs: ids outside the vocabulary, too-long sequences and float ids are refused before
  they reach torch (on CUDA they would be a device-side assert);
- outputs: a folder that is not a checkpoint is never replaced by a save or a training run.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rmcourse import bradley_terry as bt
from rmcourse import calibration as cal
from rmcourse import formats, losses, metrics, rewardbench
from rmcourse.tokenization import PairCollator, encode_pair_texts

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "fixtures" / "bad"
NAN = float("nan")

pytestmark = pytest.mark.usefixtures("one_thread")


def _raises(error, match, fn):
    with pytest.raises(error, match=match):
        fn()


# ---------------------------------------------------------------- files -> load_pairs / read_rows
@pytest.mark.parametrize("name, error, match", [
    ("no_such_file.jsonl", FileNotFoundError, "no_such_file.jsonl"),
    ("empty.jsonl", ValueError, "'empty.jsonl' holds no rows"),
    ("blank_lines.jsonl", ValueError, "'blank_lines.jsonl' holds no rows"),
    ("malformed.jsonl", ValueError, "line 2 of 'malformed.jsonl' is not valid JSON"),
    ("not_rows.jsonl", ValueError, "line 1 of 'not_rows.jsonl' holds list, not a row object"),
    ("scalar.json", ValueError, "'scalar.json' holds a JSON int"),
    ("utf16.jsonl", ValueError, "'utf16.jsonl' is not UTF-8 text"),
    ("broken.csv", ValueError, "cannot read 'broken.csv' as CSV"),
    ("not_parquet.parquet", ValueError, "cannot read 'not_parquet.parquet' as Parquet"),
    ("hh_no_assistant.jsonl", ValueError, "row 0: transcript has no '\\\\n\\\\nAssistant:' turn"),
    ("conv_unknown_role.jsonl", ValueError, "message 0 has unknown role 'usr'"),
    ("conv_user_response.jsonl", ValueError, "the response in column 'chosen' holds a 'user' message"),
    ("margin_null_mixed.jsonl", ValueError, "column 'margin' is missing in row 0"),
    ("margin_nan.jsonl", ValueError, "column 'margin' in row 0 is not finite"),
    ("margin_text.jsonl", TypeError, "column 'margin' in row 0 must be a number, got str"),
    ("text_null.jsonl", ValueError, "empty text in row 1 \\(column 'chosen' is null\\)"),
    ("mixed_formats.jsonl", TypeError, "column 'prompt' in row 1 must be str, got list"),
    ("mixed_splits", ValueError, "no file for split 'train' in 'mixed_splits'"),
    ("only_test", ValueError, "no file for split 'train' in 'only_test'"),
])
def test_bad_files_are_named(name, error, match):
    _raises(error, match, lambda: formats.load_pairs(BAD / name))


def test_splits_are_explicit_and_never_mixed():
    assert formats.load_pairs(BAD / "mixed_splits", split="training")["chosen"] == ["train a"]
    assert formats.load_pairs(BAD / "mixed_splits", split="test")["chosen"] == ["test a"]
    assert formats.load_pairs(BAD / "only_test", split="test")["chosen"] == ["test a"]
    _raises(ValueError, "holds files of several splits", lambda: formats.load_pairs(BAD / "mixed_splits", split=None))
    _raises(TypeError, "split must be a str", lambda: formats.load_pairs(BAD / "mixed_splits", split=3))
    assert formats.split_of_file("train-00000-of-00002.parquet") == "train"
    assert formats.split_of_file("test_prefs.jsonl") == "test_prefs"
    assert formats.split_of_file("training.jsonl") == "training"


def test_unnamed_files_in_a_folder_are_the_train_split(tmp_path):
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    assert len(formats.load_pairs(tmp_path)) == 1
    _raises(ValueError, "no file for split 'test'", lambda: formats.load_pairs(tmp_path, split="test"))


def test_loading_a_file_writes_no_cache_and_keeps_json_values(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"prompt": ["p", "q"], "chosen": ["a", "c"], "rejected": ["b", "d"],
                                "margin": [1, 2.5]}))
    ds = formats.load_pairs(path)  # a .json file of columns
    assert ds["margin"] == [1.0, 2.5] and ds["chosen"] == ["a", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.json"]


# ---------------------------------------------------------------- rows -> to_canonical and friends
def _std(**extra):
    return {"prompt": "p", "chosen": "a", "rejected": "b", **extra}


@pytest.mark.parametrize("call, error, match", [
    (lambda: formats.to_canonical(None), TypeError, "got NoneType"),
    (lambda: formats.to_canonical("rows"), TypeError, "got str"),
    (lambda: formats.to_canonical(_std()), TypeError, "single dict"),
    (lambda: formats.to_canonical([]), ValueError, "empty data"),
    (lambda: formats.to_canonical([3]), TypeError, "a row must be a dict"),
    (lambda: formats.to_canonical([_std()], fmt="xml"), ValueError, "unknown format 'xml'"),
    (lambda: formats.to_canonical([_std()], errors="ignore"), ValueError, "errors must be"),
    (lambda: formats.to_canonical([_std(agreement=80)]), ValueError, "'agreement' in row 0 must lie in \\[0, 1\\]"),
    (lambda: formats.to_canonical([_std(margin=True)]), TypeError, "'margin' in row 0 must be a number, got bool"),
    (lambda: formats.to_canonical([_std(margin=float("inf"))]), ValueError, "not finite"),
    (lambda: formats.to_canonical([_std(section="Chat")]), ValueError, "'section' in row 0 is 'Chat'"),
    (lambda: formats.to_canonical([_std(chosen=None), _std()]), ValueError,
     "empty text in row 0 \\(column 'chosen' is null\\)"),
    (lambda: formats.to_canonical([_std(rejected=None)]), ValueError,
     "cannot detect the format of a row whose 'chosen' or 'rejected' is null"),
    (lambda: formats.to_canonical(pd.DataFrame([_std(), _std(rejected=NAN)])), ValueError,
     "empty text in row 1 \\(column 'rejected' is null\\)"),
    (lambda: formats.to_canonical(pd.DataFrame([_std(margin=1.0), _std(margin=NAN)])), ValueError,
     "'margin' in row 1 is not finite"),
    (lambda: formats.to_canonical([{"chosen": "\n\nHuman: hi there", "rejected": "\n\nHuman: hi you"}]),
     ValueError, "no '\\\\n\\\\nAssistant:' turn"),
    (lambda: formats.to_canonical([{"chosen": [{"role": "user", "content": "q"}, {"role": "user", "content": "a"}],
                                    "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}]),
     ValueError, "holds a 'user' message"),
    (lambda: formats.to_canonical([{"prompt": [{"role": "user", "content": " "}],
                                    "chosen": [{"role": "assistant", "content": "a"}],
                                    "rejected": [{"role": "assistant", "content": "b"}]}]),
     ValueError, "message 0 \\(user\\) has no content"),
    (lambda: formats.to_canonical([{"prompt": [{"role": "user", "content": "q"}],
                                    "chosen": [{"role": "assistant", "content": "a"}, {"role": "tool", "content": "t"}],
                                    "rejected": [{"role": "assistant", "content": "b"}]}]),
     ValueError, "does not end with an assistant message"),
    (lambda: formats.detect_format(None), TypeError, "a row must be a dict"),
    (lambda: formats.detect_format({}), ValueError, "unknown format"),
    (lambda: formats.split_common_prefix(1, 2), TypeError, "chosen must be str"),
    (lambda: formats.split_common_prefix("", "b"), ValueError, "chosen is empty"),
    (lambda: formats.render_messages("User: hi"), TypeError, "must be a list of messages"),
    (lambda: formats.render_messages([{"text": "hi"}]), TypeError, "must be a dict with 'role' and 'content'"),
    (lambda: formats.render_messages([{"role": "usr", "content": "hi"}]), ValueError, "unknown role 'usr'"),
    (lambda: formats.split_hh_transcript(None), TypeError, "transcript must be str"),
    (lambda: formats.read_rows(3), TypeError, "path must be a str"),
])
def test_bad_rows_are_named(call, error, match):
    _raises(error, match, call)


def test_the_drop_policy_drops_value_errors_and_counts_them():
    rows = [_std(), _std(chosen=None), {"prompt": [{"role": "usr", "content": "q"}],
                                       "chosen": [{"role": "assistant", "content": "a"}],
                                       "rejected": [{"role": "assistant", "content": "b"}]}]
    assert len(formats.to_canonical(rows[:2], errors="drop")) == 1


# ---------------------------------------------------------------- numbers -> metrics, calibration
@pytest.mark.parametrize("call, error, match", [
    (lambda: metrics.pairwise_accuracy([1.0, NAN], [0.0, 0.0]), ValueError, "non-finite value \\(nan\\) at index 1"),
    (lambda: metrics.pairwise_accuracy(torch.tensor([float("inf")]), [0.0]), ValueError, "non-finite"),
    (lambda: metrics.pairwise_accuracy(["1"], [0.0]), TypeError, "must hold numbers, got text"),
    (lambda: metrics.pairwise_accuracy([1.0, "x"], [0.0, 0.0]), TypeError, "must hold numbers"),
    (lambda: metrics.pairwise_accuracy([True], [False]), TypeError, "booleans"),
    (lambda: metrics.pairwise_accuracy([1.0, None], [0.0, 0.0]), ValueError, "missing value \\(None\\) at index 1"),
    (lambda: metrics.pairwise_accuracy({"a": 1.0}, [0.0]), TypeError, "got dict"),
    (lambda: metrics.pairwise_accuracy(1.0, 0.0), ValueError, "must be 1-D"),
    (lambda: metrics.pairwise_accuracy([[1.0, 2.0], [3.0]], [0.0, 0.0]), ValueError, "ragged"),
    (lambda: metrics.per_section_accuracy(["chat"], [NAN], [0.0]), ValueError, "non-finite"),
    (lambda: cal.expected_calibration_error([0.6, NAN], [1, 0]), ValueError, "non-finite"),
    (lambda: cal.expected_calibration_error([60.0, 70.0], [1, 0]), ValueError, "confidence must lie in"),
    (lambda: cal.expected_calibration_error([0.6], ["yes"]), TypeError, "must hold numbers"),
    (lambda: cal.reliability_table([0.6], [1], n_bins=2.5), TypeError, "n_bins must be an int"),
    (lambda: cal.reliability_table([0.6], [1], n_bins=0), ValueError, "n_bins must be >= 1"),
    (lambda: cal.reliability_table([0.6], [1], low="0"), TypeError, "low must be a number"),
    (lambda: cal.brier_score([60, 70], [1, 0]), ValueError, "fractions in \\[0, 1\\], not percentages"),
    (lambda: cal.pairwise_nll([1.0], [0.0], labels=[2.0]), ValueError, "labels must be in \\[0, 1\\]"),
    (lambda: cal.pairwise_nll([1.0], [0.0], labels=[NAN]), ValueError, "non-finite"),
    (lambda: cal.pairwise_nll([1.0], [0.0], temperature=0.0), ValueError, "positive number"),
    (lambda: cal.pairwise_nll([1.0], [0.0], temperature=NAN), ValueError, "finite number"),
    (lambda: cal.pairwise_nll([1.0], [0.0], temperature="2"), TypeError, "temperature must be a number"),
    (lambda: cal.fit_temperature([1.0, NAN], [0.0, 0.0]), ValueError, "non-finite"),
    (lambda: cal.fit_temperature([1.0, 2.0], [0.0, 0.0], bounds="ab"), TypeError, "bounds must be a"),
    (lambda: cal.fit_temperature([1.0, 2.0], [0.0, 0.0], bounds=(NAN, 1.0)), ValueError, "finite"),
    (lambda: cal.apply_temperature([1.0, NAN], 2.0), ValueError, "non-finite"),
    (lambda: cal.apply_temperature([1.0], True), TypeError, "temperature must be a number"),
    (lambda: cal.apply_temperature(None, 2.0), TypeError, "rewards must be numbers"),
    (lambda: cal.predicted_side_confidence([1.0], [0.0], labels=[0.5]), ValueError, "0 or 1"),
])
def test_bad_numbers_in_metrics_and_calibration(call, error, match):
    _raises(error, match, call)


# ---------------------------------------------------------------- numbers -> Bradley-Terry
def _battles(**cols):
    base = {"model_a": ["a", "b"], "model_b": ["b", "a"], "winner": ["a", "b"]}
    return pd.DataFrame({**base, **cols})


@pytest.mark.parametrize("call, error, match", [
    (lambda: bt.bt_probability(NAN, 1.0), ValueError, "r1 has a non-finite value"),
    (lambda: bt.bt_probability(np.array([1.0, float("inf")]), 0.0), ValueError, "non-finite value \\(inf\\) at index 1"),
    (lambda: bt.bt_probability(torch.tensor([0.0, NAN]), torch.tensor([0.0, 0.0])), ValueError, "r1 has a non-finite value"),
    (lambda: bt.bt_probability("1", 0.0), TypeError, "r1"),
    (lambda: bt.bt_probability([1.0, "x"], 0.0), TypeError, "must hold numbers"),
    (lambda: bt.bt_probability(1.0, 0.0, temperature=0.0), ValueError, "temperature must be a positive"),
    (lambda: bt.simulate_battles([1.0, NAN], 10), ValueError, "not finite"),
    (lambda: bt.simulate_battles({"a": 1.0, "b": None}, 10), ValueError, "not finite"),
    (lambda: bt.simulate_battles([1.0, 2.0], 10.0), TypeError, "n_battles must be an int"),
    (lambda: bt.simulate_battles([1.0, 2.0], 0), ValueError, "n_battles must be at least 1"),
    (lambda: bt.simulate_battles([1.0, 2.0], 10, tie_prob=1.5), ValueError, "tie_prob"),
    (lambda: bt.fit_bt(_battles(winner=["a", NAN])), ValueError, "unknown winner value"),
    (lambda: bt.fit_bt(_battles(winner=["a", None])), ValueError, "unknown winner value"),
    (lambda: bt.fit_bt(_battles(), l2=-1.0), ValueError, "l2 must be >= 0"),
    (lambda: bt.fit_bt(_battles(), models="ab"), TypeError, "models must be a list"),
    (lambda: bt.fit_bt(_battles().iloc[:0]), ValueError, "battles is empty"),
    (lambda: bt.fit_bt([{"model_a": "a"}]), TypeError, "battles must be a pandas DataFrame"),
    (lambda: bt.bootstrap_leaderboard(_battles(), n_boot=2, ci=NAN), ValueError, "ci must be"),
    (lambda: bt.to_elo(NAN), ValueError, "non-finite"),
    (lambda: bt.to_elo(pd.Series([1.0, NAN])), ValueError, "non-finite"),
    (lambda: bt.to_elo(torch.tensor([NAN])), ValueError, "non-finite"),
    (lambda: bt.predicted_win_matrix({"a": 1.0, "b": NAN}), ValueError, "not finite"),
])
def test_bad_numbers_in_bradley_terry(call, error, match):
    _raises(error, match, call)


# ---------------------------------------------------------------- numbers -> RewardBench
@pytest.mark.parametrize("call, error, match", [
    (lambda: rewardbench.rewardbench_score(["hep-go"], [NAN], [0.0]), ValueError, "non-finite"),
    (lambda: rewardbench.rewardbench_score("hep-go", [1.0] * 6, [0.0] * 6), TypeError, "subsets must be a list"),
    (lambda: rewardbench.subset_accuracy(["hep-go"], ["1"], [0.0]), TypeError, "must hold numbers"),
    (lambda: rewardbench.section_scores(pd.DataFrame({"subset": ["hep-go"], "accuracy": [90.0]})),
     ValueError, "not percentages"),
    (lambda: rewardbench.section_scores(pd.DataFrame({"subset": ["hep-go"], "accuracy": [NAN]})),
     ValueError, "non-finite"),
    (lambda: rewardbench.section_scores(pd.DataFrame({"subset": ["hep-go"], "accuracy": [0.5]}),
                                        weights={"hep-go": NAN}), ValueError, "weight of subset 'hep-go'"),
    (lambda: rewardbench.section_scores(pd.DataFrame({"subset": ["hep-go"], "accuracy": [0.5], "n": [NAN]}),
                                        weights=None), ValueError, "column 'n'"),
    (lambda: rewardbench.overall_score({"chat": 90.0, "safety": 0.5}), ValueError, "not percentages"),
    (lambda: rewardbench.overall_score({"chat": NAN}), ValueError, "finite"),
    (lambda: rewardbench.overall_score([0.5]), TypeError, "sections must be a mapping"),
    (lambda: rewardbench.prior_sets_score(80), ValueError, "fraction in \\[0, 1\\]"),
    (lambda: rewardbench.prior_sets_score({"shp": NAN}), ValueError, "finite"),
    (lambda: rewardbench.prior_sets_score({"shp": "0.5"}), TypeError, "must be a number"),
])
def test_bad_numbers_in_rewardbench(call, error, match):
    _raises(error, match, call)


# ---------------------------------------------------------------- numbers -> losses, batches
@pytest.mark.parametrize("call, error, match", [
    (lambda: losses.pairwise_loss(torch.ones(2), torch.zeros(2), margin=NAN), ValueError, "margin must be finite"),
    (lambda: losses.bce_form_loss(torch.ones(2), torch.zeros(2), margin=float("inf")), ValueError, "margin must be finite"),
    (lambda: losses.pairwise_loss(torch.ones(2), torch.zeros(2), center_coef=float("inf")), ValueError, "center_coef"),
    (lambda: losses.pairwise_loss(torch.ones(2), torch.zeros(2), center_coef=NAN), ValueError, "center_coef"),
    (lambda: losses.pairwise_loss([1.0], [0.0]), TypeError, "torch.Tensor"),
])
def test_bad_numbers_in_losses(call, error, match):
    _raises(error, match, call)


@pytest.fixture(scope="module")
def tokenizer():
    from rmcourse.models import load_tokenizer

    return load_tokenizer("minilm")


def _rows(*margins):
    return [{"chosen_input_ids": [101, 7592, 102], "rejected_input_ids": [101, 2088, 102],
             "chosen_token_type_ids": [0, 0, 0], "rejected_token_type_ids": [0, 0, 0], "margin": m}
            for m in margins]


def test_a_none_margin_is_never_trained_as_zero(tokenizer):
    collate = PairCollator(tokenizer)
    _raises(ValueError, "row 0 has no margin \\(missing or None\\)", lambda: collate(_rows(None, None)))
    _raises(ValueError, "row 1 has no margin", lambda: collate(_rows(1.0, None)))
    _raises(TypeError, "margin in row 0 must be a number, got str", lambda: collate(_rows("1.0")))
    _raises(ValueError, "margin must be finite, got nan in row 1", lambda: collate(_rows(1.0, NAN)))
    assert collate(_rows(1.0, 2))["margin"].tolist() == [1.0, 2.0]


def test_overflow_policy_is_checked(tokenizer):
    _raises(ValueError, "overflow must be one of", lambda: encode_pair_texts(tokenizer, ["p"], ["r"], 16, overflow="cut"))
    long = " ".join(["word"] * 40)
    _raises(ValueError, "1 of 1 responses do not fit max_length=16",
            lambda: encode_pair_texts(tokenizer, ["p"], [long], 16, overflow="error"))
    ids, report = encode_pair_texts(tokenizer, ["a long prompt " * 10], [long], 16, overflow="truncate")
    assert len(ids[0]) == 16 and report.n_response_truncated == 1 and report.n_dropped == 0


# ---------------------------------------------------------------- checkpoints and models
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        num_labels=1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bad_ckpt") / "good"
    RewardModel(BertForSequenceClassification(config), tokenizer).save_pretrained(path)
    return path


def _variant(checkpoint: Path, tmp_path: Path, change) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(checkpoint, target)
    change(target)
    return target


def _drop(*names):
    return lambda p: [(p / n).unlink() for n in names if (p / n).exists()]


def _write(name, data):
    return lambda p: (p / name).write_bytes(data if isinstance(data, bytes) else data.encode())


@pytest.mark.parametrize("change, error, match", [
    (_drop("tokenizer.json", "tokenizer_config.json", "vocab.txt"), ValueError, "the tokenizer of 'ckpt' is missing"),
    (_drop("model.safetensors"), FileNotFoundError, "no weights in 'ckpt'"),
    (_drop("config.json"), FileNotFoundError, "config.json missing"),
    (_write("model.safetensors", b"garbage" * 10), ValueError, "'model.safetensors' in 'ckpt' is damaged"),
    (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:4000]),
     ValueError, "damaged or truncated"),
    (_write("config.json", "{"), ValueError, "'config.json' in 'ckpt' is damaged"),
    (_write("rmcourse.json", "{not json"), ValueError, "'rmcourse.json' in 'ckpt' is damaged"),
    (_write("rmcourse.json", "[1, 2]"), ValueError, "holds list, not an object"),
    (_write("rmcourse.json", '{"max_length": "128"}'), ValueError, "'max_length' must be int"),
    (_write("rmcourse.json", '{"max_length": 100000}'), ValueError, "exceeds what this model can read"),
    (lambda p: (p / "config.json").write_text(json.dumps(
        {**json.loads((p / "config.json").read_text()), "architectures": ["BertModel"]})),
     ValueError, "not a reward-model checkpoint"),
    (lambda p: (p / "config.json").write_text(json.dumps(
        {**json.loads((p / "config.json").read_text()), "id2label": {"0": "a", "1": "b"}})),
     ValueError, "num_labels=2"),
])
def test_damaged_checkpoints_are_named(change, error, match, checkpoint, tmp_path):
    from rmcourse.models import RewardModel, load_reward_model

    broken = _variant(checkpoint, tmp_path, change)
    _raises(error, match, lambda: RewardModel.from_pretrained(broken, device="cpu"))
    if "architectures" not in match and "num_labels" not in match and "reward-model" not in match:
        _raises(error, match, lambda: load_reward_model(broken, device="cpu"))


def test_weights_that_do_not_cover_the_model_are_refused(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    from rmcourse.models import RewardModel

    def drop_head(p):
        tensors = load_file(p / "model.safetensors")
        save_file({k: v for k, v in tensors.items() if not k.startswith("classifier")},
                  p / "model.safetensors", metadata={"format": "pt"})

    broken = _variant(checkpoint, tmp_path, drop_head)
    _raises(ValueError, "do not cover the model: 2 tensor\\(s\\) missing \\(first: classifier.bias\\)",
            lambda: RewardModel.from_pretrained(broken, device="cpu"))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"device": "gpu"}, ValueError, "unknown device 'gpu'"),
    ({"device": 5}, TypeError, "device must be None, a str"),
    ({"device": "cuda:7" if torch.cuda.is_available() else "cuda"}, ValueError, "CUDA"),
    ({"device": "mps"}, ValueError, "MPS is not available"),
    ({"dtype": "float33"}, ValueError, "unknown dtype"),
])
def test_wrong_devices_and_dtypes(kwargs, error, match, checkpoint):
    from rmcourse.models import RewardModel

    if kwargs.get("device") == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    _raises(error, match, lambda: RewardModel.from_pretrained(checkpoint, **kwargs))


def test_bad_loader_arguments(checkpoint, tmp_path):
    from rmcourse.models import load_reward_model, load_tokenizer

    _raises(ValueError, "max_length must be an int >= 2, got 0", lambda: load_reward_model(checkpoint, device="cpu", max_length=0))
    _raises(TypeError, "max_length must be an int or None", lambda: load_reward_model(checkpoint, max_length="9"))
    _raises(TypeError, "seed must be an int", lambda: load_reward_model(checkpoint, seed="1"))
    _raises(ValueError, "unknown model", lambda: load_reward_model(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    _raises(FileNotFoundError, "config.json missing", lambda: load_reward_model(empty))
    no_tok = _variant(checkpoint, tmp_path, _drop("tokenizer.json", "tokenizer_config.json"))
    _raises(ValueError, "tokenizer of 'ckpt' is missing", lambda: load_tokenizer(no_tok))


def test_model_inputs_are_checked_before_torch(checkpoint):
    from rmcourse.models import RewardModel

    model = RewardModel.from_pretrained(checkpoint, device="cpu")
    assert model.max_length == 64  # the position table's size, not the 512 default
    ones = torch.ones(1, 3, dtype=torch.long)
    _raises(TypeError, "integer token ids", lambda: model(torch.zeros(1, 3), ones))
    _raises(ValueError, "token ids must lie in \\[0, ", lambda: model(torch.full((1, 3), 10 ** 6), ones))
    _raises(ValueError, "token ids must lie in", lambda: model(torch.full((1, 3), -1), ones))
    _raises(ValueError, "sequences of 80 tokens exceed what this model can read \\(64",
            lambda: model(torch.ones(1, 80, dtype=torch.long), torch.ones(1, 80, dtype=torch.long)))
    _raises(TypeError, "must be a torch tensor", lambda: model.pair_rewards({"input_ids": [[1]], "attention_mask": [[1]]}))
    _raises(ValueError, "max_length must be an int >= 2", lambda: setattr(model, "max_length", True))
    _raises(ValueError, "exceeds what this model can read", lambda: setattr(model, "max_length", 65))
    _raises(ValueError, "exceeds what this model can read", lambda: model.score(["p"], ["r"], max_length=100))
    _raises(ValueError, "overflow must be 'error' or 'truncate'", lambda: model.score(["p"], ["r"], overflow="drop"))
    long = " ".join(["word"] * 100)
    _raises(ValueError, "response 0 does not fit max_length=64", lambda: model.score(["p"], [long]))
    assert model.score(["p"], [long], overflow="truncate").shape == (1,)


def test_score_pairs_uses_the_saved_window_and_an_explicit_overflow(checkpoint):
    import datasets

    from rmcourse.models import RewardModel

    model = RewardModel.from_pretrained(checkpoint, device="cpu")
    model.max_length = 32
    long = " ".join(["word"] * 40)
    ds = datasets.Dataset.from_list([_std(chosen="short answer"), _std(chosen=long)])
    _raises(ValueError, "1 of 2 pairs have a response longer than max_length=32",
            lambda: metrics.score_pairs(model, ds))
    _raises(ValueError, "use score_pairs_report", lambda: metrics.score_pairs(model, ds, overflow="drop"))
    _raises(ValueError, "overflow must be one of", lambda: metrics.score_pairs(model, ds, overflow="cut"))
    _raises(TypeError, "RewardModel", lambda: metrics.score_pairs(torch.nn.Linear(2, 1), ds))
    scored = metrics.score_pairs_report(model, ds, overflow="drop")
    assert scored.kept.tolist() == [0] and scored.report.n_dropped == 1 and scored.max_length == 32
    chosen, _ = metrics.score_pairs(model, ds, overflow="truncate")
    assert chosen.shape == (2,)
    assert torch.allclose(chosen[:1], scored.chosen)


# ---------------------------------------------------------------- outputs are never lost
def test_saving_never_replaces_a_folder_that_is_not_a_checkpoint(checkpoint, tmp_path):
    from rmcourse.models import RewardModel, check_output_folder

    model = RewardModel.from_pretrained(checkpoint, device="cpu")
    data = tmp_path / "my_data"
    data.mkdir()
    (data / "train.jsonl").write_text("precious\n")
    _raises(ValueError, "refusing to write a checkpoint into 'my_data'.*train.jsonl",
            lambda: model.save_pretrained(data))
    assert (data / "train.jsonl").read_text() == "precious\n"
    check_output_folder(tmp_path / "new")      # absent: fine
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty")    # empty: fine
    again = tmp_path / "again"
    model.save_pretrained(again)
    model.save_pretrained(again)               # an rmcourse checkpoint is replaced
    assert (again / "rmcourse.json").exists()


def test_train_cli_refuses_an_output_folder_holding_data_before_training(tmp_path, capsys):
    from rmcourse.train import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(data / "train.jsonl"), "--output", str(data), "--max-steps", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to write a checkpoint into 'data'" in err and "delete this one yourself" in err
    assert sorted(p.name for p in data.iterdir()) == ["train.jsonl"]


@pytest.mark.parametrize("name, message", [
    ("malformed.jsonl", "error: --data: line 2 of 'malformed.jsonl' is not valid JSON"),
    ("margin_text.jsonl", "error: --data: column 'margin' in row 0 must be a number, got str"),
    ("mixed_splits", "error: --data: no file for split 'train'"),
])
def test_train_cli_bad_data_is_one_line_not_a_traceback(name, message, tmp_path):
    from rmcourse.train import main

    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(BAD / name), "--max-steps", "1", "--no-progress"])
    assert isinstance(exit_.value.code, str) and exit_.value.code.startswith(message)
