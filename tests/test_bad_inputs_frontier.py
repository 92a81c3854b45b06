"""The bad-input sweep for the modules of chapters 05-08b and the evaluate CLI (issue 21).

`tests/test_bad_inputs.py` holds the older modules to this standard; these tests do the same
for judges, generative, critiques, rewardbench2, objectives, odin, process, dpo, heads,
ensembles, overoptimization (its best-of-n side), linear_reward, ranking, bootstrap and
`python -m rmcourse.evaluate`. One test group per class of mistake:

- data loss: the report of `--json` never replaces an input or a file that is not a report;
- units that look alike: percentages for fractions, logits for probabilities, probabilities for
  log-probabilities are refused, and the message names the unit;
- statistics that mislead: a [prompts, samples] array is bootstrapped by cluster, a 95% interval
  needs enough resamples, NaN never reaches a fitted weight;
- tracebacks from inside torch / numpy: wrong types and shapes are named first;
- messages that name the wrong problem: a string where a list is expected is refused by type;
  a JSON file holding a dictionary of splits is named as such.

The last group checks that valid input still gives the numbers the unchanged code gave (the
expected values were computed with the modules before this change).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rmcourse import (bootstrap, critiques, dpo, ensembles, generative, heads, judges, linear_reward,
                      objectives, odin, overoptimization as oo, process, ranking, rewardbench2 as rb2)
from rmcourse.heads import PairFeatures

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
NAN = float("nan")

pytestmark = pytest.mark.usefixtures("one_thread")


def _raises(error, match, fn):
    with pytest.raises(error, match=match):
        fn()


ATTRS = {"detail": 1, "polite": True, "correct": True, "refuses": False, "should_refuse": False,
         "padding": 0}
F32 = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
PAIRS = PairFeatures(F32, F32 + 1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random reward-model checkpoint (max_length 128)."""
    from transformers import BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel, load_tokenizer

    tok = load_tokenizer("minilm")
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("frontier") / "rm"
    RewardModel(BertForSequenceClassification(config), tok).save_pretrained(path)
    return path


def _cli(argv, capsys) -> tuple[int, str, str]:
    from rmcourse.evaluate import main

    try:
        code = main([str(a) for a in argv] + ["--no-progress"])
    except SystemExit as exit_:
        captured = capsys.readouterr()
        if isinstance(exit_.code, str):
            return 1, captured.out, exit_.code
        return exit_.code, captured.out, captured.err
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ================================================================ data loss: evaluate --json
@pytest.fixture()
def data_file(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_bytes((FIXTURES / "trl_standard.jsonl").read_bytes())
    return path


def test_json_output_never_replaces_the_data_file(checkpoint, data_file, tmp_path, capsys):
    before = data_file.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, _, err = _cli(["--model", checkpoint, "--data", data_file, "--json", data_file, *extra], capsys)
        assert code == 2
        assert "--json: 'pairs.jsonl' is the --data file: writing the report there would replace your data" in err
        assert "Traceback" not in err
    link = tmp_path / "link.jsonl"
    link.symlink_to(data_file)
    code, _, err = _cli(["--model", checkpoint, "--data", data_file, "--json", link], capsys)
    assert code == 2 and "is the --data file" in err
    assert data_file.read_bytes() == before


def test_json_output_never_goes_into_the_data_folder_or_over_a_checkpoint_file(checkpoint, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_bytes((FIXTURES / "trl_standard.jsonl").read_bytes())
    for target in (folder / "train.jsonl", folder / "report.json"):
        code, _, err = _cli(["--model", checkpoint, "--data", folder, "--json", target, "--overwrite"], capsys)
        assert code == 2 and "lies inside the --data folder 'data'" in err
    assert sorted(p.name for p in folder.iterdir()) == ["train.jsonl"]
    config = (checkpoint / "config.json").read_bytes()
    code, _, err = _cli(["--model", checkpoint, "--data", "world:test:4", "--json", checkpoint / "config.json",
                         "--overwrite"], capsys)
    assert code == 2 and "'config.json' is a file of the --model checkpoint 'rm'" in err
    assert (checkpoint / "config.json").read_bytes() == config


def test_json_output_replaces_an_earlier_report_and_other_files_only_with_overwrite(
        checkpoint, data_file, tmp_path, capsys):
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}\n')
    code, _, err = _cli(["--model", checkpoint, "--data", data_file, "--json", notes], capsys)
    assert code == 2
    assert ("--json: 'notes.json' exists and is not a report written by rmcourse.evaluate; refusing to "
            "replace it (give a new file name, or pass --overwrite to replace it)") in err
    assert notes.read_text() == '{"my": "notes"}\n'

    report = tmp_path / "report.json"
    code, out, _ = _cli(["--model", checkpoint, "--data", data_file, "--json", report], capsys)
    assert code == 0 and "wrote the report as JSON" in out
    first = json.loads(report.read_text())
    code, _, _ = _cli(["--model", checkpoint, "--data", data_file, "--json", report, "--bootstrap", "0"], capsys)
    assert code == 0  # an earlier report is replaced without --overwrite
    assert json.loads(report.read_text())["accuracy"]["ci95"] is None and first["accuracy"]["ci95"]

    code, _, _ = _cli(["--model", checkpoint, "--data", data_file, "--json", notes, "--overwrite"], capsys)
    assert code == 0 and json.loads(notes.read_text())["n_pairs"] == 6
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_help_documents_the_json_rules():
    from rmcourse.evaluate import build_parser

    text = build_parser().format_help()
    assert "--overwrite" in text and "never replaces an input" in text
    assert "at least 40" in text


def test_report_recognition(tmp_path):
    from rmcourse.evaluate import is_evaluate_report, json_output_problem

    report = tmp_path / "r.json"
    report.write_text(json.dumps({"model": "m", "model_kind": "encoder", "data": "d", "format": "f",
                                  "accuracy": {}}))
    assert is_evaluate_report(report) and json_output_problem(report, "world:test:8") is None
    for text in ("[1, 2]", "{not json", '{"model": "m"}'):
        report.write_text(text)
        assert not is_evaluate_report(report)
        assert "is not a report" in json_output_problem(report, "world:test:8")
        assert json_output_problem(report, "world:test:8", overwrite=True) is None
    assert json_output_problem(tmp_path / "new.json", "world:test:8") is None


# ================================================================ units that look alike
@pytest.mark.parametrize("call, error, match", [
    # judges: probabilities in [0, 1], not percentages or log-probabilities
    (lambda: judges.position_flip_rate([70, 40], [30, 60]), ValueError,
     r"p_ab must hold probabilities in \[0, 1\], got 70.0 at index 0 \(percentages\? divide by 100"),
    (lambda: judges.position_flip_rate([-0.1, -2.0], [-1.0, -0.2]), ValueError,
     r"p_ab must hold probabilities in \[0, 1\], got -0.1 at index 0 .*log-probabilities\? exponentiate"),
    (lambda: judges.debiased_preference([0.7, 0.4], [30, 60]), ValueError, r"p_ba must hold probabilities in \[0, 1\], got 30.0"),
    # process: step scores are probabilities
    (lambda: process.aggregate_step_scores([2.0, -1.5, 0.3], "prod"), ValueError,
     r"step_scores must be probabilities in \[0, 1\], got 2.0 at index 0 \(logits\? apply a sigmoid first"),
    (lambda: process.aggregate_step_scores([90, 80], "min"), ValueError, "percentages\\? divide by 100"),
    (lambda: process.aggregate_solutions([2.0, -1.5, 0.3], [0, 0, 1], "prod"), ValueError, "logits\\? apply a sigmoid"),
    (lambda: process.train_step_classifier(torch.zeros(2, 3), [0, 100]), ValueError,
     r"labels must be in \[0, 1\] \(the probability that the step is good, not a percentage\), got 100.0 at index 1"),
    (lambda: process.sample_solution(process.make_problems(1)[0], random.Random(0), kind_probs={"clean": 45, "slip": 55}),
     ValueError, "summing to 1 .* \\(fractions, not percentages\\)"),
    (lambda: process.math_shepherd_labels(*_problem_and_solution(), p_slip=15), ValueError,
     r"p_slip must be a probability in \[0, 1\], got 15.0 \(a fraction, not a percentage\)"),
    # dpo: log-probabilities, not probabilities
    (lambda: dpo.dpo_loss([0.2, 0.5], [0.1, 0.3], [0.2, 0.4], [0.1, 0.3]), ValueError,
     r"chosen_logps must hold log-probabilities \(<= 0\), got 0.2\d* at index 0: probabilities\? pass their log"),
    (lambda: dpo.implicit_reward([-1.0, 0.5], [-1.0, -2.0]), ValueError, "logps must hold log-probabilities \\(<= 0\\), got 0.5 at index 1"),
    # fractions, not percentages
    (lambda: bootstrap.mean_ci([1.0, 0.0, 1.0], level=95), ValueError,
     r"level must be in \(0.5, 1\), got 95.0 \(a fraction such as 0.95, not a percentage\)"),
    (lambda: objectives.objective_ratings(ATTRS, 50, np.random.default_rng(0)), ValueError,
     r"noise must be a probability in \[0, 1\], got 50.0 \(a fraction, not a percentage\)"),
    (lambda: critiques.noisy_oracle_critiques(["p"], ["r"], [ATTRS], 25), ValueError,
     r"error_rate must be a number in \[0, 1\], got 25 \(a fraction, not a percentage\)"),
    (lambda: oo.best_of_n_probabilities([50, 50], 2), ValueError, "probs must sum to 1, they sum to 100 \\(fractions, not percentages\\)"),
    # generative (kept): probabilities where log-probabilities are expected
    (lambda: generative.yes_probability([0.7], [0.2]), ValueError, "log-probabilities must be <= 0 \\(did you pass probabilities"),
    (lambda: judges.expected_score(torch.tensor([[0.2, 0.8]])), ValueError, "logprobs must be <= 0 \\(log-probabilities, not logits"),
])
def test_units_that_look_alike_are_refused(call, error, match):
    _raises(error, match, call)


def _problem_and_solution():
    problem = process.make_problems(1)[0]
    return problem, process.sample_solution(problem, random.Random(0), kind="clean")


# ================================================================ statistics that mislead
def test_mean_ci_bootstraps_a_prompts_by_samples_array_by_cluster():
    rng = np.random.default_rng(0)
    per_prompt = rng.normal(size=(30, 1))
    values = per_prompt + 0.1 * rng.normal(size=(30, 8))  # 8 samples per prompt, strongly clustered
    clustered = bootstrap.mean_ci(values, seed=1)
    assert clustered == bootstrap.mean_ci(values.mean(axis=1), seed=1)  # rows resampled whole
    assert clustered.estimate == pytest.approx(values.mean())
    flat = bootstrap.mean_ci(values.reshape(-1), seed=1)  # what the old code silently did
    assert (clustered.high - clustered.low) > 2 * (flat.high - flat.low)
    d = bootstrap.paired_difference_ci(values + 0.5, values, seed=1)
    assert d == bootstrap.mean_ci(np.full(30, 0.5), seed=1)
    _raises(ValueError, "a and b must score the same units: 20 vs 20 values \\(shapes \\(4, 5\\) and \\(5, 4\\)\\)",
            lambda: bootstrap.paired_difference_ci(np.ones((4, 5)), np.zeros((5, 4))))
    _raises(ValueError, "values must be 1-D \\[units\\] or 2-D \\[units, values per unit\\], got shape \\(2, 2, 2\\)",
            lambda: bootstrap.mean_ci(np.ones((2, 2, 2))))


def test_evaluate_needs_enough_bootstrap_resamples(checkpoint, data_file, capsys):
    from rmcourse.evaluate import evaluate_pairs
    from rmcourse.formats import load_pairs
    from rmcourse.models import RewardModel

    for n in ("1", "39"):
        code, _, err = _cli(["--model", checkpoint, "--data", data_file, "--bootstrap", n], capsys)
        assert code == 2
        assert f"argument --bootstrap: must be 0 (no interval) or at least 40 resamples, got '{n}'" in err
    code, out, _ = _cli(["--model", checkpoint, "--data", data_file, "--bootstrap", "40"], capsys)
    assert code == 0 and "95% bootstrap CI" in out and "(40 resamples)" in out
    model = RewardModel.from_pretrained(checkpoint, device="cpu")
    _raises(ValueError, "n_boot must be 0 \\(no interval\\) or at least 40, got 1",
            lambda: evaluate_pairs(model, load_pairs(data_file), n_boot=1))


@pytest.mark.parametrize("call, error, match", [
    (lambda: objectives.fit_objective_heads(torch.ones(6, 3).cumsum(0),
                                            torch.tensor([[1.0, 0, 0, 0, 0]] * 5 + [[NAN, 0, 0, 0, 0]])),
     ValueError, "ratings has a non-finite value \\(nan\\) in row 5, column 'correctness': drop or fill that row first"),
    (lambda: objectives.verbosity_penalties(torch.tensor([[NAN, 0, 0, 0, 1.0]] * 4)), ValueError,
     "predicted has a non-finite value \\(nan\\) at index 0"),
    (lambda: objectives.train_gating(_heads(), {n: 0.0 for n in objectives.OBJECTIVES}, torch.ones(4, 3),
                                     torch.ones(4, 3), torch.full((4, 2), NAN)),
     ValueError, "prompt_features has a non-finite value \\(nan\\) in row 0, column 0"),
    (lambda: ensembles.combine_rewards(torch.ones(3, 4), "uncertainty", lam=NAN), ValueError, "lam must be a finite number, got nan"),
    (lambda: heads.train_head(PairFeatures(F32 * NAN, F32)), ValueError,
     "train.chosen has a non-finite value \\(nan\\) at row 0, column 0"),
    (lambda: heads.train_head(PairFeatures(F32, F32, [NAN] * 8), use_margin=True), ValueError,
     "train.margin has a non-finite value \\(nan\\) at pair 0"),
    (lambda: odin.train_odin(PAIRS, [NAN] * 8, [1.0] * 8), ValueError, "chosen_length has a non-finite value \\(nan\\) at index 0"),
    (lambda: odin.train_odin(PAIRS, [1.0] * 8, [2.0] * 8, length_coef=NAN), ValueError, "length_coef must be a finite number"),
    (lambda: process.train_step_classifier(torch.zeros(2, 3), [NAN, 1.0]), ValueError, "labels has a non-finite value \\(nan\\) at index 0"),
    (lambda: process.aggregate_solutions([NAN, 0.5], [0, 0]), ValueError, "step_scores has a non-finite value \\(nan\\) at index 0"),
    (lambda: judges.position_flip_rate([NAN, 0.7], [0.3, 0.2]), ValueError, "p_ab must hold probabilities in \\[0, 1\\], got nan at index 0"),
    (lambda: judges.expected_score([[-float("inf"), -float("inf")]]), ValueError,
     "row 0 of logprobs is -inf for every score token"),
    (lambda: ranking.score_responses(lambda p, r: [NAN] * len(p), ["p"], [["a", "b"]]), ValueError,
     "the scorer returned a non-finite reward \\(nan\\) for response 0"),
    (lambda: oo.fit_gao_bon([0, 1, 2], [0, 1, 2], gold0=NAN), ValueError, "gold0 must be a finite number, got nan"),
    (lambda: oo.peak_d(NAN, 1.0), ValueError, "alpha must be a finite number, got nan"),
    (lambda: dpo.DPOConfig(weight_decay=NAN), ValueError, "weight_decay must be a finite number, got nan"),
])
def test_nan_never_reaches_a_fitted_number(call, error, match):
    _raises(error, match, call)


def _heads():
    return objectives.fit_objective_heads(torch.arange(30.0).reshape(10, 3) % 7, torch.ones(10, 5).cumsum(0) % 3)


# ================================================================ tracebacks from inside torch / numpy
class RewardModel:  # what a learner holds when a CausalLM is expected (a .score and a .tokenizer)
    tokenizer = None

    def score(self, prompts, responses, batch_size=1):
        return np.zeros(len(prompts))


@pytest.mark.parametrize("call, error, match", [
    # a RewardModel where a CausalLM is expected
    (lambda: judges.judge_score_logprobs(RewardModel(), ["p"], ["r"]), TypeError,
     "lm must be a CausalLM \\(load_causal_lm\\(\\)\\), got RewardModel: a reward model scores"),
    (lambda: judges.judge_generate(RewardModel(), ["p"], ["r"], judges.RUBRIC_JUDGE_TEMPLATE), TypeError, "lm must be a CausalLM"),
    (lambda: judges.pairwise_first_probability(RewardModel(), ["p"], ["a"], ["b"]), TypeError, "lm must be a CausalLM"),
    (lambda: generative.genrm_rewards(RewardModel(), ["p"], ["r"]), TypeError, "lm must be a CausalLM"),
    (lambda: generative.single_token_id(RewardModel(), "Yes"), TypeError, "lm must be a CausalLM"),
    (lambda: critiques.lm_critiques(RewardModel(), ["p"], ["r"]), TypeError, "lm must be a CausalLM"),
    (lambda: generative.load_causal_lm(device="gpu"), ValueError, "unknown device 'gpu'; this machine has cpu"),
    (lambda: dpo.load_policy(device="gpu"), ValueError, "unknown device 'gpu'"),
    # strings where numbers are expected
    (lambda: bootstrap.mean_ci(["1", "0", "1"]), TypeError, "values must hold numbers, got text"),
    (lambda: ranking.kendall_tau(["a", "b", "c"], [1, 2, 3]), TypeError, "true_scores must hold numbers, got text"),
    (lambda: judges.expected_score([["a", "b"]]), TypeError, "logprobs must hold numbers, got text"),
    (lambda: dpo.dpo_loss(["-1"], ["-2"], ["-1"], ["-2"]), TypeError, "chosen_logps must hold numbers, got text"),
    (lambda: generative.yes_probability(["-0.1"], ["-2"]), TypeError, "logp_yes must hold numbers, got text"),
    (lambda: rb2.best_of_n_result("1.0", ["0.5", "0.2"]), TypeError, "chosen_score must be a tensor, array or list of numbers, got str"),
    (lambda: rb2.rewardbench2_score([{"subset": "Math", "chosen_scores": ["1.0"], "rejected_scores": [0.0]}]),
     TypeError, "chosen_scores of row 0 must hold numbers, got text"),
    (lambda: oo.expected_best_of_n([["a", "b"]], [[1.0, 2.0]], 1), TypeError, "proxy_scores must hold numbers, got text"),
    (lambda: oo.fit_gao_bon(["0", "1", "2"], [0, 1, 2]), TypeError, "d must hold numbers, got text"),
    (lambda: oo.rejection_subsample(np.ones((2, 4)), "0.5", 1), TypeError, "keep_base must be a number, got str"),
    (lambda: heads.train_head(PAIRS, lr="0.1"), TypeError, "lr must be a number, got str '0.1'"),
    (lambda: heads.kwise_pairs([F32], [["a"] * 8]), TypeError, "scores\\[0\\] must hold numbers, got text"),
    (lambda: odin.train_odin(PAIRS, ["10"] * 8, [1] * 8), TypeError, "chosen_length must hold numbers, got text"),
    (lambda: objectives.objective_ratings(dict(ATTRS, detail="3")), TypeError, "attrs: attribute 'detail' must be an int, got str"),
    (lambda: linear_reward.attribute_features([dict(ATTRS, polite="False")]), TypeError,
     "attrs\\[0\\]: attribute 'polite' must be a bool, got str"),
    (lambda: critiques.oracle_critique("p", "r", dict(ATTRS, detail=None)), TypeError, "attrs: attribute 'detail' must be an int, got NoneType"),
    (lambda: process.math_shepherd_labels(*_problem_and_solution(), p_slip="0.1"), TypeError, "p_slip must be a number, got str"),
    (lambda: linear_reward.fit_linear_bt(torch.ones(2, 1), torch.ones(2, 1), l2="0.1"), TypeError, "l2 must be a number, got str"),
    # a (X_chosen, X_rejected) tuple where a features object is expected
    (lambda: heads.train_head((F32, F32)), TypeError,
     "train must be PairFeatures, got tuple: wrap the two matrices, PairFeatures\\(X_chosen, X_rejected\\)"),
    (lambda: heads.evaluate_head(heads.RewardHead(6), (F32, F32)), TypeError, "pairs must be PairFeatures, got tuple"),
    (lambda: heads.train_ensemble_heads((F32, F32)), TypeError, "train must be PairFeatures, got tuple"),
    (lambda: linear_reward.fit_linear_bt((F32, F32)), TypeError,
     "fit_linear_bt takes chosen_features and rejected_features as two arguments, got one \\(chosen, rejected\\) pair"),
    (lambda: linear_reward.fit_linear_bt(PAIRS), TypeError, "got one PairFeatures: pass features.chosen, features.rejected"),
    # mismatched feature widths and dtypes
    (lambda: heads.train_head(PAIRS, PairFeatures(F32[:, :3], F32[:, :3])), ValueError,
     "val.chosen has 3 features per row but the model reads 6"),
    (lambda: heads.train_head(PAIRS, head=heads.RewardHead(3)), ValueError, "train.chosen has 6 features per row but the model reads 3"),
    (lambda: heads.score_head(heads.RewardHead(6), F32[:, :3]), ValueError, "features has 3 features per row but the model reads 6"),
    (lambda: heads.train_head(PairFeatures(F32.double(), F32.double())), TypeError,
     "train.chosen is torch.float64 but the model's weights are torch.float32: convert it with .to\\(torch.float32\\)"),
    (lambda: heads.kwise_pairs([F32, F32[:, :3]], [list(range(8))] * 2), ValueError, "features\\[1\\] has 3 features per row"),
    (lambda: ensembles.combine_rewards(torch.ones(3, 4, dtype=torch.long)), TypeError,
     "member_rewards must hold floating-point rewards, got a torch.int64 tensor \\(call .float\\(\\) on it\\)"),
    (lambda: objectives.train_gating(_heads(), {n: 0.0 for n in objectives.OBJECTIVES}, torch.ones(4, 2),
                                     torch.ones(4, 2), torch.ones(4, 2)), ValueError, "features have 2 columns, the heads expect 3"),
    (lambda: _gated().score(torch.ones(2, 3), torch.ones(2, 5)), ValueError,
     "prompt_features must have shape \\[N, 2\\] \\(the gate reads 2 prompt features\\), got \\(2, 5\\)"),
    (lambda: objectives.apply_verbosity_penalties(np.ones((2, 5)), {n: 0.1 for n in objectives.OBJECTIVES}), TypeError,
     "predicted must be a 2-D float torch.Tensor \\[N, objectives\\], got ndarray"),
    (lambda: process.StepClassifier(torch.zeros(3), torch.zeros(())).predict_proba(np.zeros((2, 3))), TypeError,
     "features must be a 2-D torch.Tensor \\[N, 3\\], got ndarray"),
    (lambda: odin.pearson([1.0, 2.0], [2.0, 3.0]), TypeError, "x must be a 1-D torch.Tensor, got list"),
    (lambda: odin.odin_loss(heads.RewardHead(6), F32, F32, torch.ones(8), torch.ones(8)), TypeError,
     "model must be a TwoHeadRM \\(a quality and a length head\\), got RewardHead"),
    # batch_size=0, a negative learning rate
    (lambda: objectives.train_gating(_heads(), {n: 0.0 for n in objectives.OBJECTIVES}, torch.ones(4, 3),
                                     torch.ones(4, 3), torch.ones(4, 2), batch_size=0), ValueError, "batch_size must be a positive int, got 0"),
    (lambda: heads.train_kwise_head([F32], [list(range(8))], prompts_per_batch=0), ValueError,
     "prompts_per_batch must be a positive int, got 0"),
    (lambda: odin.train_odin(PAIRS, [1.0] * 8, [2.0] * 8, lr=-1), ValueError, "lr must be > 0, got -1"),
    (lambda: objectives.train_gating(_heads(), {n: 0.0 for n in objectives.OBJECTIVES}, torch.ones(4, 3),
                                     torch.ones(4, 3), torch.ones(4, 2), lr=-1), ValueError, "lr must be > 0, got -1"),
    (lambda: heads.train_head(PAIRS, epochs=True), TypeError, "epochs must be an int, got bool True"),
    # a numpy Generator where random.Random is expected (and the other way round)
    (lambda: process.sample_solution(process.make_problems(1)[0], np.random.default_rng(0)), TypeError,
     "rng must be a random.Random, e.g. random.Random\\(0\\), got Generator \\(this module draws with Python's random"),
    (lambda: process.sample_solution(process.make_problems(1)[0], 0), TypeError, "pass random.Random\\(seed\\), not the seed"),
    (lambda: judges.add_filler("r", 2, seed=np.random.default_rng(0)), TypeError, "seed must be an int \\(it seeds Python's random.Random\\)"),
    (lambda: critiques.noisy_oracle_critiques(["p"], ["r"], [ATTRS], 0.5, seed=np.random.default_rng(0)), TypeError,
     "seed must be an int"),
    (lambda: objectives.objective_ratings(ATTRS, 0.5, random.Random(0)), TypeError,
     "rng must be a numpy Generator \\(np.random.default_rng\\(seed\\)\\), got Random"),
    # a list of dicts where a Dataset is expected
    (lambda: linear_reward.pair_features([{"chosen_attrs": ATTRS, "rejected_attrs": ATTRS}]), TypeError,
     "got a list of row dicts: wrap it as datasets.Dataset.from_list\\(rows\\)"),
    (lambda: heads.pair_features([{"prompt": "p", "chosen": "a", "rejected": "b"}]), TypeError,
     "ds must be a datasets.Dataset or DataFrame, got list"),
    # objects of the wrong kind
    (lambda: process.math_shepherd_labels(*reversed(_problem_and_solution())), TypeError,
     "problem must be a Problem \\(make_problems\\), got Solution \\(arguments swapped\\?"),
    (lambda: process.exact_step_labels("x"), TypeError, "solution must be a Solution"),
    (lambda: objectives.train_gating((1, 2), {}, torch.ones(4, 3), torch.ones(4, 3), torch.ones(4, 2)), TypeError,
     "heads must be ObjectiveHeads"),
    (lambda: rb2.world_rb2_bench({}, 2), TypeError, "world must be an rmcourse.world.PreferenceWorld, got dict"),
    (lambda: rb2.score_rows([{"prompt": "p", "chosen": ["a"], "rejected": ["b"]}], 3), TypeError,
     "score_fn must be a callable"),
    (lambda: rb2.rb1_pairs([{"chosen_scores": [1.0], "rejected_scores": [0.0]}]), ValueError, "row 0 is missing 'subset'"),
    (lambda: oo.best_of_n_curve(np.ones((2, 4)), np.ones((2, 4)), [1], extras=[np.ones((2, 4))]), TypeError,
     "extras must be a dict"),
    (lambda: process.train_step_classifier(torch.zeros(6, 2), [1, 0] * 3, sample_weight=[1, 2]), ValueError,
     "sample_weight must have one value per row \\(6\\), got shape \\(2,\\)"),
])
def test_wrong_types_and_shapes_are_named_before_torch_or_numpy(call, error, match):
    _raises(error, match, call)


def _gated():
    heads_ = _heads()
    return objectives.train_gating(heads_, {n: 0.0 for n in objectives.OBJECTIVES}, torch.ones(4, 3),
                                   torch.zeros(4, 3), torch.ones(4, 2), epochs=1)


def test_evaluate_pairs_refuses_a_list_of_rows(checkpoint):
    from rmcourse.evaluate import evaluate_pairs
    from rmcourse.models import RewardModel

    model = RewardModel.from_pretrained(checkpoint, device="cpu")
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}]
    _raises(TypeError, "ds must be a datasets.Dataset of canonical pairs, got list: "
                       "rmcourse.formats.to_canonical\\(rows\\)", lambda: evaluate_pairs(model, rows))
    _raises(TypeError, "lm must be a CausalLM \\(load_causal_lm\\(\\)\\), got RewardModel: a reward model",
            lambda: generative.next_token_logprobs(model, ["a text"], ["Yes"]))


# ================================================================ messages that name the wrong problem
@pytest.mark.parametrize("call, error, match", [
    (lambda: judges.best_vs_worst_pairs(["p"], ["a b c"], [[1, 2]]), TypeError,
     "candidates\\[0\\] must be a list \\(the candidate texts of prompt 0\\), got a single string: wrap it in a list"),
    (lambda: judges.best_vs_worst_pairs(["p"], [["a", "b"]], [1, 2]), TypeError,
     "scores\\[0\\] must be a list \\(one score per candidate of prompt 0\\), got int 1"),
    (lambda: judges.best_vs_worst_pairs(None, [["a", "b"]], [[1, 2]]), TypeError, "prompts must be a list \\(one entry per prompt\\), got NoneType"),
    (lambda: judges.parse_scores(None), TypeError, "texts must be a list of judgements \\(strings\\), got NoneType"),
    (lambda: rb2.rewardbench2_score([{"subset": "Math", "chosen": "one good answer", "rejected": ["b"],
                                      "chosen_scores": [1.0], "rejected_scores": [0.0]}]), TypeError,
     "row 0: chosen must be a list of texts, got a single string: wrap it in a list"),
    (lambda: rb2.rewardbench2_from_rewards([{"subset": "Math"}], [1.0], [[0.0]]), TypeError,
     "chosen_rewards\\[0\\] must be a list of rewards \\(one per chosen completion of row 0\\), got float 1.0"),
    (lambda: rb2.ties_score("ref:1"), TypeError, "samples must be a list of dicts"),
    (lambda: ranking.score_responses(lambda p, r: np.zeros(len(p)), "a prompt", [["a", "b"]]), TypeError,
     "prompts must be a list \\(one entry per prompt\\), got a single string"),
    (lambda: ranking.ranking_kendall_taus(lambda p, r: np.zeros(len(p)), "prompt"), TypeError,
     "rankings_ds must be a datasets.Dataset, a dict of columns or a list of row dicts, got str"),
    (lambda: process.reasoning_features(["p", "q"], "ab"), TypeError, "texts must be a list of strings, got a single string"),
    (lambda: process.sample_solutions(process.make_problems(1)[0], 2), TypeError,
     "problems must be a list of Problem, got a single Problem: pass \\[problem\\]"),
    (lambda: critiques.oracle_critiques(["p"] * 6, ["r"] * 6, ATTRS), TypeError,
     "attrs must be a list of attribute dicts \\(one per response\\), got dict"),
    (lambda: objectives.ratings_matrix("abc"), TypeError, "attrs_list must be a list of attribute mappings, got str"),
    (lambda: objectives.fit_objective_heads(torch.ones(4, 2), torch.ones(4, 5), names="abcde"), TypeError,
     "names must be a list of objective names, got str 'abcde'"),
    (lambda: oo.best_of_n_curve(np.ones((2, 4)), np.ones((2, 4)), 4), TypeError,
     "ns must be a list of integers \\(the n of each best-of-n\\), got int 4: for one n pass \\[n\\]"),
    (lambda: generative.pair_lists(None, ["r"]), TypeError, "prompts must be a list of strings, got NoneType"),
])
def test_a_string_where_a_list_is_expected_is_refused_by_type(call, error, match):
    _raises(error, match, call)


def test_strings_for_lists_with_a_causal_lm():
    from _tiny_causal_lm import make_tiny_lm

    lm = make_tiny_lm()
    _raises(TypeError, "scale must be a list of single-digit ints such as range\\(6\\), got str 'abc'",
            lambda: judges.judge_expected_scores(lm, ["p"], ["r"], scale="abc"))
    _raises(TypeError, "responses\\[0\\] must be a str, got int",
            lambda: generative.genrm_rewards(lm, ["p"], [3]))
    _raises(TypeError, "template must be a str with the fields",
            lambda: generative.chat_texts(lm, None, ["p"], ["r"]))
    _raises(TypeError, "texts must be a list of strings, got NoneType",
            lambda: generative.next_token_logprobs(lm, None, ["Yes"]))


def test_a_split_dictionary_in_a_json_file_is_named(checkpoint, tmp_path, capsys):
    rows = [json.loads(line) for line in (FIXTURES / "trl_standard.jsonl").read_text().splitlines()]
    for train, test in ((rows[:3], rows[3:]), (rows[:4], rows[4:])):  # equal and unequal sizes
        path = tmp_path / "splits.json"
        path.write_text(json.dumps({"train": train, "test": test}))
        code, _, err = _cli(["--model", checkpoint, "--data", path], capsys)
        assert code == 1
        assert err.startswith("error: --data: 'splits.json' holds a dictionary of splits ('test', 'train'), "
                              "not rows: save the split to evaluate as its own file (e.g. test.jsonl")
    columns = tmp_path / "columns.json"  # a dict of columns is data, not splits
    columns.write_text(json.dumps({k: [r[k] for r in rows] for k in rows[0]}))
    code, out, _ = _cli(["--model", checkpoint, "--data", columns, "--bootstrap", "0"], capsys)
    assert code == 0 and "6 pairs" in out


# ================================================================ valid input: the same numbers as before
# Expected values computed with the modules as they were before the input checks were added.
def test_valid_input_gives_the_numbers_it_gave_before():
    rng = np.random.default_rng(0)
    x = rng.random(50) < 0.7
    a, b = rng.normal(size=40), rng.normal(size=40)
    assert bootstrap.mean_ci(x, seed=1) == bootstrap.Interval(0.7, 0.58, 0.82, 0.95)
    assert bootstrap.mean_ci(torch.from_numpy(x), seed=1) == bootstrap.Interval(0.7, 0.58, 0.82, 0.95)
    assert bootstrap.paired_difference_ci(a, b, seed=2) == bootstrap.Interval(
        0.17362527840143935, -0.24714465997212348, 0.5902429360465155, 0.95)

    xc = torch.tensor(np.random.default_rng(1).normal(size=(30, 3)))
    xr = torch.tensor(np.random.default_rng(2).normal(size=(30, 3)))
    assert linear_reward.fit_linear_bt(xc + 0.5, xr, l2=1e-2).tolist() == pytest.approx(
        [1.8155476297927144, 0.11972684000698167, 0.2666732314965448], rel=1e-9)

    m = torch.tensor(np.random.default_rng(3).normal(size=(3, 6)), dtype=torch.float32)
    assert ensembles.combine_rewards(m, "uncertainty", lam=2.0).tolist() == pytest.approx(
        [-5.6215996742248535, -3.1858885288238525, -1.3570725917816162, -5.647793769836426,
         -0.2259412705898285, -0.27610915899276733], rel=1e-6)

    f = torch.tensor(np.random.default_rng(4).normal(size=(40, 6)), dtype=torch.float32)
    run = heads.train_head(PairFeatures(f + 0.3, f.flip(0)), epochs=3, hidden=8, seed=1)
    assert run.history["train_loss"].tolist() == pytest.approx(
        [0.6975623369216919, 0.6922426223754883, 0.6876470446586609, 0.6833315491676331], rel=1e-5)
    ode = odin.train_odin(PairFeatures(f + 0.3, f.flip(0)), np.arange(40.0), np.arange(40.0)[::-1].copy(),
                          epochs=2, batch_size=16)
    assert ode.history["loss"].tolist() == pytest.approx([0.8212459683418274, 0.7938533425331116], rel=1e-5)

    ratings = torch.tensor(np.random.default_rng(5).normal(size=(80, 5)), dtype=torch.float32)
    feats = torch.tensor(np.random.default_rng(6).normal(size=(80, 7)), dtype=torch.float32)
    assert objectives.fit_objective_heads(feats, ratings).bias.tolist() == pytest.approx(
        [0.0019113636808469892, 0.08506714552640915, -0.1439841091632843, -0.21159477531909943,
         -0.007882650010287762], rel=1e-5, abs=1e-7)
    assert objectives.verbosity_penalties(ratings + 0.3 * ratings[:, 4:5]) == {
        "correctness": 0.35, "detail": 0.4, "politeness": 0.2, "refusal_decision": 0.35, "verbosity": 1.0}
    assert process.aggregate_step_scores([0.9, 0.8, 0.95], "prod") == 0.684
    assert process.aggregate_solutions([0.9, 0.2, 0.7, 0.6], [0, 0, 1, 1], "prod").tolist() == [0.18000000000000002, 0.42]
    assert process.train_step_classifier(feats[:20], [1.0, 0.0, 0.5, 1.0] * 5, l2=1e-3, max_iter=30).weight.tolist() == \
        pytest.approx([-0.343069463968277, 2.9327199459075928, -0.447148859500885, -1.5208929777145386,
                       -0.23386313021183014, 0.6637486219406128, 0.5929036736488342], rel=1e-4, abs=1e-5)

    pa, pb = np.random.default_rng(7).random(10), np.random.default_rng(8).random(10)
    assert judges.position_flip_rate(pa, pb) == pytest.approx(0.30000001192092896, abs=1e-7)
    assert judges.debiased_preference(pa, pb).tolist()[:3] == pytest.approx(
        [0.6490616202354431, 0.45496848225593567, 0.7284874320030212], rel=1e-6)
    lp = torch.log_softmax(torch.tensor(np.random.default_rng(9).normal(size=(3, 6)), dtype=torch.float32), 1) - 0.5
    assert judges.expected_score(lp).tolist() == pytest.approx(
        [3.042649269104004, 3.0574123859405518, 2.0030782222747803], rel=1e-6)
    assert judges.expected_score(lp, range(6)).tolist() == judges.expected_score(lp).tolist()

    p, g = np.random.default_rng(10).normal(size=(6, 8)), np.random.default_rng(11).normal(size=(6, 8))
    assert oo.best_of_n_curve(p, g + 0.5 * p, [1, 2, 4, 8])["gold_mean"].tolist() == pytest.approx(
        [-0.21187871064237881, -0.012592394654262198, 0.13761303290367863, 0.08898263693104407], rel=1e-12)
    assert oo.fit_gao_bon([0.0, 0.5, 1.0, 1.5], [0.0, 0.4, 0.5, 0.45]) == pytest.approx(
        (0.9815789473684211, 0.4578947368421052), rel=1e-12)


def test_valid_input_of_the_kinds_a_notebook_passes_still_works():
    import pandas as pd

    # booleans ("was this pair right"), pandas Series and tensors are valid numbers
    right = torch.tensor([True, False, True, True])
    assert bootstrap.mean_ci(right, n_boot=100).estimate == 0.75
    assert oo.fit_gao_bon(pd.Series([0.0, 0.5, 1.0]), pd.Series([0.0, 0.3, 0.4]))[0] > 0
    # standardised lengths (negative values) are fine for ODIN: a correlation ignores shifts
    assert len(odin.train_odin(PAIRS, torch.randn(8), torch.randn(8), epochs=1).history) == 1
    # a binary truth is a valid (tied) ranking; a range is a valid list of score values
    assert ranking.kendall_tau([True, False, True], [0.9, 0.1, 0.5]) > 0
    # an rng is only needed (and checked) when the rater is noisy
    assert objectives.objective_ratings(ATTRS, 0.0, random.Random(0))["detail"] == 1.0
    # log-probabilities of exactly 0 (a certain completion) are log-probabilities
    losses, _, _ = dpo.dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2))
    assert losses.tolist() == pytest.approx([np.log(2)] * 2)
    # a datasets Column (what ds["words"] returns) is a sequence of numbers, as before
    import datasets

    ds = datasets.Dataset.from_dict({"c": [float(i) for i in range(8)], "r": [1.0] * 8, "ok": [1, 0, 1, 1, 0, 1, 1, 1]})
    assert len(odin.train_odin(PAIRS, ds["c"], ds["r"], epochs=1).history) == 1
    assert bootstrap.mean_ci(ds["ok"], n_boot=100).estimate == 0.75
    assert process.aggregate_step_scores(range(0, 2), "min") == 0.0
    # a dict of columns with the world's attribute columns
    xc, xr = linear_reward.pair_features({"chosen_attrs": [ATTRS], "rejected_attrs": [dict(ATTRS, correct=False)]})
    assert (xc - xr).tolist() == [[0.0, 0.0, 2.0, 0.0, 0.0]]
