"""Evaluate a reward-model checkpoint on preference pairs from the command line.

    python -m rmcourse.evaluate --model artifacts/rm-cli --data world:test:200
    python -m rmcourse.evaluate --model path/to/trl-rm --data rewardbench.jsonl --overflow truncate \\
        --json report.json

The counterpart of `python -m rmcourse.train`. The model is an rmcourse checkpoint or any
transformers `*ForSequenceClassification` folder with num_labels=1 (e.g. trained with TRL's
RewardTrainer); the data is a local file/folder in any format `rmcourse.formats` reads, or
`world:SPLIT:N` pairs of the course's preference world. It prints (and `--json FILE` writes):

- pairwise accuracy, ties counted as wrong (RewardBench, TRL), with a 95% bootstrap interval, and
  two baselines on the same pairs: chance (0.5) and the rule "the longer answer wins";
- accuracy per section and per subset, when the data has those columns;
- the RewardBench v1 score (`rmcourse.rewardbench.rewardbench_score`) when every subset is one of
  RewardBench's, and the RewardBench 2 score for RewardBench 2 rows once its scorer is wired in
  (`rewardbench2_scorer` below; the rules of allenai/reward-bench's main branch, commit 05a9005);
- calibration: the ECE of the predicted side's confidence and, when the rows carry annotator vote
  shares (`agreement`), a temperature fitted on them (in-sample: chapter 05 fits it on a
  validation split instead);
- chapter 05's length slices: accuracy when the chosen answer is longer, and when it is shorter.

Texts longer than the model's window (its saved max_length, or --max-length) follow `--overflow`:
error (the default: nothing is scored), truncate (the response is cut from the right, as
RewardBench's own scripts cut over-long texts) or drop (left out and counted). Bad input (a
missing or damaged file, a folder that is not a reward model, malformed rows, a JSON file holding
a dictionary of splits) exits with code 1 and one line saying what is wrong; bad arguments exit
with code 2.

The report never costs the learner a file: `--json FILE` refuses (exit 2, before anything is
loaded) a FILE that is the --data file, lies inside the --data folder, or is an existing file of
the --model folder; and an existing FILE that is not a report this tool wrote is replaced only
with `--overwrite`. A report written earlier is replaced (atomically). `--bootstrap N` needs N = 0
(no interval) or N >= 40 (`MIN_BOOT`): with fewer resamples a 2.5% tail of the 95% interval
holds less than one resample, and the "interval" is just the smallest and largest resample.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rmcourse.train import WORLD_PREFIX, _number_type, load_data, parse_world_spec

__all__ = [
    "build_parser",
    "evaluate_pairs",
    "format_report",
    "is_rewardbench2_rows",
    "main",
    "is_evaluate_report",
    "json_output_problem",
    "MIN_BOOT",
    "rewardbench2_scorer",
    "score_rewardbench2_rows",
]

_positive_int = _number_type(int, 1, True, "a positive integer")
_non_negative_int = _number_type(int, 0, True, "an integer >= 0")

#: The fewest bootstrap resamples behind a 95% interval: each 2.5% tail then holds at least one
#: resample (0.025 * 40 = 1). 0 means no interval; the default, 1000, gives a stable one.
MIN_BOOT = 40
_REPORT_KEYS = ("model", "model_kind", "data", "format")
_MAX_REPORT_BYTES = 20_000_000


def _bootstrap_count(text: str) -> int:
    value = _non_negative_int(text)
    if 0 < value < MIN_BOOT:
        raise argparse.ArgumentTypeError(
            f"must be 0 (no interval) or at least {MIN_BOOT} resamples, got {text!r}: with fewer, "
            "a 95% interval's 2.5% tails hold less than one resample each")
    return value

EPILOG = """\
model:
  --model takes an rmcourse checkpoint (python -m rmcourse.train --output DIR) or any
  transformers *ForSequenceClassification folder with num_labels=1, such as one saved by TRL's
  RewardTrainer. A folder without a reward head (a base model) is refused: its head would be
  random numbers.

data:
  --data takes a local .json/.jsonl/.parquet/.csv file or a folder of them, in any format
  rmcourse.formats understands (hh_rlhf, trl_standard, trl_implicit, trl_conversational,
  trl_conversational_implicit, rewardbench, ultrafeedback; --format auto detects it), or
  world:SPLIT:N[:SEED] for pairs of the course's preference world. In a folder, --split picks
  the files named for that split (train.jsonl, test-00000-of-00001.parquet, ...).

output:
  --json FILE also writes the report as JSON. It never replaces an input: a FILE that is the
  --data file, inside the --data folder, or an existing file of the --model folder is refused
  (exit 2), with or without --overwrite. An existing FILE that is a report written earlier by
  this tool is replaced; any other existing file is refused unless --overwrite is given.

exit codes: 0 evaluated, 1 bad model or data (one line on stderr says what), 2 bad arguments
  (including a --json FILE that would replace an input or, without --overwrite, another file).

examples:
  python -m rmcourse.evaluate --model artifacts/rm-cli --data world:test:200
  python -m rmcourse.evaluate --model artifacts/rm-cli --data tests/fixtures/rewardbench.jsonl \\
      --overflow truncate --json artifacts/eval.json
"""


# ---------------------------------------------------------------- RewardBench 2 (plug-in point)
def is_rewardbench2_rows(rows: Sequence[dict]) -> bool:
    """RewardBench 2 rows hold ONE prompt, a list of chosen and a list of rejected completions
    (mostly best-of-4: one chosen, three rejected; its Ties subset has several chosen), not a
    pair."""
    if not rows or not isinstance(rows[0], dict):
        return False
    first = rows[0]
    return (isinstance(first.get("chosen"), list) and isinstance(first.get("rejected"), list)
            and all(isinstance(x, str) for x in first["chosen"] + first["rejected"])
            and isinstance(first.get("prompt"), str))


def score_rewardbench2_rows(model: Any, rows: Sequence[dict], batch_size: int = 32,
                            max_length: int | None = None, overflow: str = "error",
                            progress: bool = False) -> tuple[list[list[float]], list[list[float]]]:
    """Rewards of every completion of RewardBench 2 rows: (chosen_rewards, rejected_rewards),
    one list per row, in order. All completions are scored in one batched pass."""
    if overflow not in ("error", "truncate"):
        raise ValueError(f"overflow must be 'error' or 'truncate' for RewardBench 2 rows (a row "
                         f"missing one completion cannot be scored), got {overflow!r}")
    if isinstance(rows, (str, bytes, dict)) or not hasattr(rows, "__iter__"):
        raise TypeError(f"rows must be a list of RewardBench 2 row dicts, got {type(rows).__name__}")
    prompts, texts, owners = [], [], []
    for i, row in enumerate(rows):
        if not is_rewardbench2_rows([row]):
            raise ValueError(f"row {i} is not a RewardBench 2 row (prompt: str, chosen: [str], "
                             "rejected: [str])")
        if not row["chosen"] or not row["rejected"]:
            raise ValueError(f"row {i} has an empty chosen or rejected list")
        for side in ("chosen", "rejected"):
            for text in row[side]:
                prompts.append(row["prompt"])
                texts.append(text)
                owners.append((i, side))
    rewards = model.score(prompts, texts, batch_size=batch_size, max_length=max_length,
                          progress=progress, overflow=overflow).tolist()
    chosen: list[list[float]] = [[] for _ in rows]
    rejected: list[list[float]] = [[] for _ in rows]
    for (i, side), value in zip(owners, rewards):
        (chosen if side == "chosen" else rejected)[i].append(value)
    return chosen, rejected


def rewardbench2_scorer() -> Callable[[Sequence[dict], list, list], dict]:
    """The function the CLI calls on RewardBench 2 rows: ``scorer(rows, chosen_rewards,
    rejected_rewards)`` with the rows (prompt, chosen list, rejected list, subset, id) and each
    completion's reward, one list per row (`score_rewardbench2_rows`). It is chapter 08's
    `rmcourse.rewardbench2.rewardbench2_from_rewards`: best-of-N accuracy per subset with the
    official tie rule, the Ties subset's own weighted score, and the unweighted mean over subsets,
    as allenai/reward-bench's main branch computes them (commit 05a9005; release 0.1.4 differs in
    the Ties tanh term when tied right answers score identically, by at most 0.01).
    """
    from rmcourse.rewardbench2 import rewardbench2_from_rewards

    return rewardbench2_from_rewards


# ---------------------------------------------------------------- the evaluation itself
def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, np.generic):
        return _nan_to_none(value.item())
    return value


def _accuracy_dict(chosen: np.ndarray, rejected: np.ndarray) -> dict:
    from rmcourse.metrics import pairwise_accuracy

    report = pairwise_accuracy(chosen, rejected)
    return {"accuracy": report.accuracy, "n": report.n, "n_correct": report.n_correct,
            "n_ties": report.n_ties}


def _bootstrap_ci(correct: np.ndarray, n_boot: int, seed: int) -> list[float] | None:
    if n_boot == 0 or correct.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, correct.size, size=(n_boot, correct.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]


def _column(ds: Any, name: str, kept: np.ndarray) -> np.ndarray | None:
    if name not in ds.column_names:
        return None
    return np.asarray(ds[name], dtype=object)[kept]


def _length_slices(chosen_texts: Sequence[str], rejected_texts: Sequence[str],
                   chosen: np.ndarray, rejected: np.ndarray) -> tuple[dict, float]:
    """Chapter 05's slices: accuracy when the chosen answer is longer / shorter (words; CJK
    characters count one each), and the accuracy of the rule "the longer answer wins"."""
    from rmcourse.filters import text_length

    n_c = np.array([text_length(t, "auto") for t in chosen_texts])
    n_r = np.array([text_length(t, "auto") for t in rejected_texts])
    out: dict[str, Any] = {"unit": "words; a CJK character counts as one"}
    for name, mask in (("chosen_longer", n_c > n_r), ("chosen_shorter", n_c < n_r)):
        out[name] = _accuracy_dict(chosen[mask], rejected[mask]) if mask.any() else {"n": 0}
    out["same_length"] = {"n": int((n_c == n_r).sum())}
    return out, float(np.mean(n_c > n_r))


def _calibration(chosen: np.ndarray, rejected: np.ndarray, agreement: np.ndarray | None) -> dict:
    from rmcourse.calibration import (apply_temperature, expected_calibration_error,
                                      fit_temperature, pairwise_nll, predicted_side_confidence)

    conf, correct = predicted_side_confidence(chosen, rejected)
    out: dict[str, Any] = {"ece": expected_calibration_error(conf, correct, n_bins=10),
                           "n_bins": 10, "mean_confidence": float(conf.mean()),
                           "accuracy": float(correct.mean())}
    if agreement is None:
        out["temperature"] = {"skipped": "needs an 'agreement' column (annotators' vote share "
                                         "for the chosen answer) to fit a temperature"}
        return out
    labels = agreement.astype(float)
    if np.all(labels == 1.0):
        out["temperature"] = {"skipped": "every 'agreement' is 1: with no disagreement the "
                                         "fitted temperature only runs to its lower bound"}
        return out
    if np.all(chosen == rejected):
        out["temperature"] = {"skipped": "all rewards tie: no temperature fits"}
        return out
    low, high = 0.01, 100.0
    t = fit_temperature(chosen, rejected, labels=labels, bounds=(low, high))
    conf_t, correct_t = predicted_side_confidence(apply_temperature(chosen, t),
                                                  apply_temperature(rejected, t))
    out["temperature"] = {
        "temperature": t, "fitted_on": "these pairs (in-sample), labels = agreement",
        "nll_before": pairwise_nll(chosen, rejected, labels),
        "nll_after": pairwise_nll(chosen, rejected, labels, temperature=t),
        "ece_after": expected_calibration_error(conf_t, correct_t, n_bins=10),
        # At a bound the optimum lies outside the search: T -> large means the reward gaps say
        # next to nothing about the labels; T -> small means every gap should be sharper.
        "at_bound": bool(t <= low * 1.001 or t >= high * 0.999),
    }
    return out


def _rewardbench_v1(subsets: np.ndarray | None, chosen: np.ndarray, rejected: np.ndarray) -> dict:
    from rmcourse.formats import REWARDBENCH_SUBSET_TO_SECTION
    from rmcourse.rewardbench import rewardbench_score

    if subsets is None:
        return {"skipped": "no 'subset' column"}
    unknown = sorted({str(s) for s in subsets} - set(REWARDBENCH_SUBSET_TO_SECTION))
    if unknown:
        return {"skipped": f"subsets that are not RewardBench's: {', '.join(unknown[:5])}"
                           + (" ..." if len(unknown) > 5 else "")}
    report = rewardbench_score([str(s) for s in subsets], chosen, rejected)
    return {"score": report.score, "sections": report.sections,
            "missing_sections": report.missing_sections,
            "weights": "official example counts (rewardbench/constants.py)"}


def evaluate_pairs(model: Any, ds: Any, *, batch_size: int = 32, max_length: int | None = None,
                   overflow: str = "error", progress: bool = False, n_boot: int = 1000,
                   seed: int = 0) -> dict:
    """Everything `python -m rmcourse.evaluate` reports, as a dict (NaN written as None).

    `ds` holds canonical pairs (prompt, chosen, rejected; optional section, subset, agreement).
    `max_length=None` uses the model's own window; `overflow` is "error", "truncate" or "drop".
    """
    from rmcourse.metrics import per_section_accuracy, score_pairs_report
    from rmcourse.rewardbench import subset_accuracy
    from rmcourse.validation import as_count

    as_count(n_boot, "n_boot", low=0)
    if 0 < n_boot < MIN_BOOT:
        raise ValueError(f"n_boot must be 0 (no interval) or at least {MIN_BOOT}, got {n_boot}: with "
                         "fewer resamples a 95% interval's 2.5% tails hold less than one resample")
    if not hasattr(ds, "column_names"):
        hint = (": rmcourse.formats.to_canonical(rows) turns a list of row dicts into one"
                if isinstance(ds, list) else "")
        raise TypeError(f"ds must be a datasets.Dataset of canonical pairs, got {type(ds).__name__}{hint}")
    scored = score_pairs_report(model, ds, batch_size=batch_size, max_length=max_length,
                                progress=progress, overflow=overflow)
    kept = scored.kept
    chosen = scored.chosen.numpy().astype(np.float64)
    rejected = scored.rejected.numpy().astype(np.float64)
    report = scored.report
    out: dict[str, Any] = {
        "n_pairs": len(ds),
        "n_scored": int(kept.size),
        "window": {"max_length": scored.max_length, "overflow": overflow,
                   "n_prompt_cut": report.n_truncated,
                   "n_response_truncated": report.n_response_truncated,
                   "n_dropped": report.n_dropped},
    }
    accuracy = _accuracy_dict(chosen, rejected)
    accuracy["ci95"] = _bootstrap_ci((chosen > rejected).astype(float), n_boot, seed)
    accuracy["n_boot"] = n_boot
    out["accuracy"] = accuracy
    out["length"], longer_wins = _length_slices(_column(ds, "chosen", kept),
                                                _column(ds, "rejected", kept), chosen, rejected)
    out["baselines"] = {"chance": 0.5, "longer_answer_wins": longer_wins}

    sections = _column(ds, "section", kept)
    if sections is not None:
        table = per_section_accuracy([str(s) for s in sections], chosen, rejected)
        out["per_section"] = table.to_dict("records")
    subsets = _column(ds, "subset", kept)
    if subsets is not None:
        table = subset_accuracy([str(s) for s in subsets], chosen, rejected)
        out["per_subset"] = table.to_dict("records")
    out["rewardbench"] = _rewardbench_v1(subsets, chosen, rejected)
    agreement = _column(ds, "agreement", kept)
    out["calibration"] = _calibration(chosen, rejected, agreement)
    return _nan_to_none(out)


# ---------------------------------------------------------------- printing
def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _table(rows: list[dict], key: str) -> list[str]:
    lines = [f"  {key:<24} {'n':>6} {'accuracy':>9} {'ties':>5}"]
    for row in rows:
        lines.append(f"  {str(row[key]):<24} {row['n']:>6} {_pct(row['accuracy']):>9} "
                     f"{row['n_ties']:>5}")
    return lines


def format_report(result: dict) -> str:
    """The human-readable report `python -m rmcourse.evaluate` prints."""
    acc = result["accuracy"]
    window = result["window"]
    lines = []
    if "model" in result:
        lines.append(f"model: {result['model']} ({result.get('model_kind', '?')}, device "
                     f"{result.get('device', '?')})")
    if "data" in result:
        lines.append(f"data: {result['data']} ({result.get('format', '?')}), "
                     f"{result['n_pairs']} pairs")
    lines.append(f"window: max_length {window['max_length']}, overflow={window['overflow']}: "
                 f"{window['n_prompt_cut']} prompts cut from the left, "
                 f"{window['n_response_truncated']} responses cut from the right, "
                 f"{window['n_dropped']} pairs dropped; {result['n_scored']} scored")
    ci = acc.get("ci95")
    resamples = f" ({acc['n_boot']} resamples)" if acc.get("n_boot") else ""
    ci_text = f", 95% bootstrap CI [{ci[0]:.3f}, {ci[1]:.3f}]{resamples}" if ci else ""
    lines += ["", f"pairwise accuracy: {_pct(acc['accuracy'])} ({acc['n_correct']}/{acc['n']} "
                  f"pairs, {acc['n_ties']} ties counted as wrong){ci_text}",
              f"  baselines on the same pairs: chance 0.500, \"the longer answer wins\" "
              f"{_pct(result['baselines']['longer_answer_wins'])}"]
    if "per_section" in result:
        lines += ["", "per section:"] + _table(result["per_section"], "section")
    if "per_subset" in result:
        lines += ["", "per subset:"] + _table(result["per_subset"], "subset")
    rb = result["rewardbench"]
    lines.append("")
    if "skipped" in rb:
        lines.append(f"RewardBench v1 score: not computed ({rb['skipped']})")
    else:
        sections = ", ".join(f"{k} {_pct(v)}" for k, v in rb["sections"].items())
        if rb["missing_sections"]:
            lines.append(f"RewardBench v1 score: not computed (no pairs from "
                         f"{', '.join(rb['missing_sections'])}); sections: {sections}")
        else:
            lines.append(f"RewardBench v1 score: {_pct(rb['score'])} (mean of sections: {sections})")
    cal = result["calibration"]
    lines += ["", f"calibration: ECE {cal['ece']:.3f} ({cal['n_bins']} bins; mean confidence "
                  f"{cal['mean_confidence']:.3f} vs accuracy {cal['accuracy']:.3f})"]
    temp = cal["temperature"]
    if "skipped" in temp:
        lines.append(f"  temperature: not fitted ({temp['skipped']})")
    else:
        bound = " (at the search bound: the fit is not meaningful)" if temp["at_bound"] else ""
        lines.append(f"  temperature fitted on {temp['fitted_on']}: T = {temp['temperature']:.3f}"
                     f"{bound}, NLL {temp['nll_before']:.3f} -> {temp['nll_after']:.3f}, "
                     f"ECE after {temp['ece_after']:.3f}")
    length = result["length"]
    lines += ["", f"length slices ({length['unit']}):"]
    for key, label in (("chosen_longer", "chosen answer longer"),
                       ("chosen_shorter", "chosen answer shorter")):
        part = length[key]
        if part["n"]:
            lines.append(f"  {label:<22} {part['n']:>6} pairs, accuracy {_pct(part['accuracy'])}")
        else:
            lines.append(f"  {label:<22} {0:>6} pairs")
    lines.append(f"  {'same length':<22} {length['same_length']['n']:>6} pairs")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (see `python -m rmcourse.evaluate --help`)."""
    p = argparse.ArgumentParser(
        prog="python -m rmcourse.evaluate",
        description="Evaluate a reward-model checkpoint on preference pairs: accuracy (ties "
                    "wrong) with a bootstrap interval, per section/subset, the RewardBench "
                    "score, calibration and length slices.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="DIR",
                   help="reward-model folder: an rmcourse checkpoint or a transformers "
                        "*ForSequenceClassification folder with num_labels=1")
    p.add_argument("--data", required=True, metavar="PATH|world:SPLIT:N",
                   help="pairs to evaluate: a local file/folder, or world:SPLIT:N")
    p.add_argument("--format", default="auto", metavar="FMT",
                   help="format of local data (default: auto-detect)")
    p.add_argument("--split", default="train", metavar="NAME",
                   help="in a folder, read the files named for this split (default: train, "
                        "which is also what a folder of files without split names holds)")
    p.add_argument("--max-length", type=_positive_int, metavar="N",
                   help="tokens per text (default: the model's own saved max_length)")
    p.add_argument("--overflow", choices=("error", "truncate", "drop"), default="error",
                   help="a response longer than the window: error (default), truncate (cut "
                        "from the right, as RewardBench's scripts do) or drop (counted)")
    p.add_argument("--batch-size", type=_positive_int, default=32,
                   help="pairs per forward pass (default: 32)")
    p.add_argument("--device", metavar="DEVICE",
                   help="cpu, cuda, cuda:N or mps (default: CUDA, then MPS, then CPU)")
    p.add_argument("--bootstrap", type=_bootstrap_count, default=1000, metavar="N",
                   help=f"bootstrap resamples for the accuracy interval: 0 = none, else at least "
                        f"{MIN_BOOT} (default: 1000)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    p.add_argument("--json", metavar="FILE",
                   help="also write the report as JSON to FILE (never an input file; an existing "
                        "file that is not an earlier report needs --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --json replace an existing file that is not an earlier report "
                        "(input files are never replaced)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")
    return p


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from rmcourse.formats import KNOWN_FORMATS

    if args.data.startswith(WORLD_PREFIX):
        try:
            parse_world_spec(args.data)
        except ValueError as err:
            parser.error(f"--data: {err}")
    elif not Path(args.data).exists():
        parser.error(f"--data: no such file or folder {args.data!r} "
                     "(give a local file/folder or world:SPLIT:N)")
    if args.format != "auto" and args.format not in KNOWN_FORMATS:
        parser.error(f"--format: unknown format {args.format!r}; use auto or one of "
                     f"{', '.join(KNOWN_FORMATS)}")
    if not Path(args.model).is_dir():
        parser.error(f"--model: no folder {args.model!r}")
    if args.json is not None:
        target = Path(args.json)
        if target.is_dir():
            parser.error(f"--json: {args.json!r} is a folder; give a file name")
        if not target.parent.exists():
            parser.error(f"--json: folder {str(target.parent)!r} does not exist")
        problem = json_output_problem(target, args.data, args.model, overwrite=args.overwrite)
        if problem:
            parser.error(f"--json: {problem}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_evaluate_report(path: str | os.PathLike) -> bool:
    """True when `path` holds a JSON report that `python -m rmcourse.evaluate --json` wrote (a
    JSON object with the header keys model, model_kind, data, format, and the accuracy or the
    RewardBench 2 results)."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > _MAX_REPORT_BYTES:
            return False
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (isinstance(report, dict) and all(k in report for k in _REPORT_KEYS)
            and ("accuracy" in report or "rewardbench2" in report))


def json_output_problem(target: str | os.PathLike, data: str, model: str | None = None,
                        overwrite: bool = False) -> str | None:
    """Why the report must not be written to `target`, or None when it may be.

    Refused always: the --data file itself (also through a link), any path inside the --data
    folder (a report there would be read as data next time), and an existing file of the --model
    folder that is not a report. Refused without `overwrite`: any other existing file that is not
    a report this tool wrote. A report written earlier may be replaced.
    """
    target = Path(target)
    resolved = target.resolve()
    name = target.name
    if not str(data).startswith(WORLD_PREFIX):
        data_path = Path(data)
        if data_path.is_file() and (resolved == data_path.resolve() or _same_file(target, data_path)):
            return (f"{name!r} is the --data file: writing the report there would replace your "
                    "data; give another file name")
        if data_path.is_dir() and data_path.resolve() in resolved.parents:
            return (f"{str(target)!r} lies inside the --data folder {data_path.name!r}: the report "
                    "would replace a data file or be read as data next time; write it elsewhere")
    report = is_evaluate_report(target)
    if model is not None and Path(model).is_dir() and Path(model).resolve() in resolved.parents \
            and target.exists() and not report:
        return (f"{name!r} is a file of the --model checkpoint {Path(model).name!r}: writing the "
                "report there would damage it; give another file name")
    if target.exists() and not report and not overwrite:
        return (f"{name!r} exists and is not a report written by rmcourse.evaluate; refusing to "
                "replace it (give a new file name, or pass --overwrite to replace it)")
    return None


def _split_dictionary(path: Path) -> list[str] | None:
    """The split names when the JSON file `path` holds {"train": [rows], "test": [rows], ...}."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # read_rows names what is wrong with the file
    if not isinstance(content, dict) or not content or {"prompt", "chosen", "rejected"} & set(content):
        return None
    if all(isinstance(v, list) and v and all(isinstance(r, dict) for r in v) for v in content.values()):
        return sorted(content)
    return None


def _load_inputs(args: argparse.Namespace) -> tuple[Any, Any, list[dict] | None, str]:
    """(model, canonical pairs or None, RewardBench 2 rows or None, format name)."""
    from rmcourse.formats import detect_format, read_rows, to_canonical
    from rmcourse.models import RewardModel

    try:
        model = RewardModel.from_pretrained(args.model, device=args.device)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise SystemExit(f"error: --model: {err}") from None
    if args.max_length is not None:
        try:
            model.max_length = args.max_length
        except ValueError as err:
            raise SystemExit(f"error: --max-length: {err}") from None
    try:
        if args.data.startswith(WORLD_PREFIX):
            return model, load_data(args.data), None, "preference world"
        splits = _split_dictionary(Path(args.data))
        if splits:
            raise ValueError(f"{Path(args.data).name!r} holds a dictionary of splits "
                             f"({', '.join(repr(k) for k in splits)}), not rows: save the split to "
                             f"evaluate as its own file (e.g. {splits[0]}.jsonl, one row per line) "
                             "or as one file per split in a folder, read with --split NAME")
        rows = read_rows(args.data, args.split)
        if args.format == "auto" and is_rewardbench2_rows(rows):
            return model, None, rows, "rewardbench2"
        fmt = detect_format(rows[0]) if args.format == "auto" else args.format
        return model, to_canonical(rows, fmt=fmt), None, fmt
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise SystemExit(f"error: --data: {err}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m rmcourse.evaluate`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)

    import datasets
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the scoring bar is the one that matters
    try:
        return _run(args)
    finally:
        if bars:
            datasets.enable_progress_bars()


def _run(args: argparse.Namespace) -> int:
    model, ds, rb2_rows, fmt = _load_inputs(args)
    header = {"model": Path(args.model).name,
              "model_kind": "decoder" if model.is_decoder else "encoder",
              "device": str(model.device), "data": args.data, "format": fmt}
    if rb2_rows is not None:
        scorer = rewardbench2_scorer()
        try:
            chosen, rejected = score_rewardbench2_rows(
                model, rb2_rows, batch_size=args.batch_size, overflow=args.overflow,
                progress=args.progress)
            result = {**header, "rewardbench2": scorer(rb2_rows, chosen, rejected)}
        except (ValueError, TypeError) as err:
            raise SystemExit(f"error: --data: {err}") from None
        print(json.dumps(_nan_to_none(result), indent=2))
    else:
        try:
            result = {**header, **evaluate_pairs(
                model, ds, batch_size=args.batch_size, overflow=args.overflow,
                progress=args.progress, n_boot=args.bootstrap, seed=args.seed)}
        except (ValueError, TypeError) as err:
            raise SystemExit(f"error: {err}") from None
        print(format_report(result))
    if args.json is not None:
        # checked again just before writing: the data may sit where the report goes by now
        problem = json_output_problem(Path(args.json), args.data, args.model, overwrite=args.overwrite)
        if problem:
            raise SystemExit(f"error: --json: {problem}")
        target = Path(args.json)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        print(f"\nwrote the report as JSON to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
