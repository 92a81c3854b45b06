"""Process vs outcome reward models on step-by-step arithmetic solutions whose steps can be wrong.

An outcome reward model (ORM) scores a whole solution, trained on whether its final answer is
right. A process reward model (PRM; Lightman et al. 2023, "Let's Verify Step by Step",
arXiv 2305.20050) scores every step prefix, trained on step labels, and a solution's score
aggregates the step scores: the product (Lightman et al.: the probability that every step is
right, for per-step labels) or the minimum (Math-Shepherd, Wang et al. 2024, arXiv 2312.08935). With
this module's cumulative labels ("every step so far is valid", `exact_step_labels`) the minimum is
the consistent aggregation; the product counts early steps many times.

Step labels come two ways here:

* **exact**: the generator knows which step is wrong. A prefix is good when every step in it
  is valid: its equation is true and it starts from the value the previous step wrote.
* **Math-Shepherd style**: no human labels; a *completer* continues the solution from the prefix
  `n_completions` times and the prefix is good ("hard estimation") when at least one completion
  reaches the right final answer (or, "soft estimation", with the share that do). That label asks
  "can one still get the right answer from here?", not "is this step valid?", so it is noisy both
  ways: a wrong step that later steps ignore can still lead to the right answer, and a right
  prefix can be unlucky.

The problems (`make_problems`) are word problems with 3-4 operations on small numbers; solutions
(`sample_solution`) are clean, or carry an arithmetic slip that propagates to the final answer,
or a slip that later steps silently ignore (a right final answer through a wrong step), or a
wrong final answer line after right steps. Everything is seeded.

Features (`reasoning_features`): the course's hashed word features plus a small "verifier" block
that a linear model can learn from: one hashed token per equation holding the LAST DIGITS of its
operands and result ("7+5=2"), one per chained value (the last digit of the value a step writes
and of the value the next step starts from) and one for the final answer line. The last digit of
a sum, difference or product is fixed by the operands' last digits, so those tokens generalise to
unseen numbers; slips of +-10 leave every last digit unchanged and stay invisible, as an
arithmetic error a small model cannot see.
"""
from __future__ import annotations

import math
import random
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from rmcourse.bootstrap import as_numbers
from rmcourse.validation import as_count, as_number

__all__ = [
    "SOLUTION_KINDS",
    "DEFAULT_KIND_PROBS",
    "Problem",
    "Solution",
    "make_problems",
    "sample_solution",
    "sample_solutions",
    "exact_step_labels",
    "math_shepherd_labels",
    "math_shepherd_rollouts",
    "reasoning_features",
    "StepClassifier",
    "train_step_classifier",
    "aggregate_step_scores",
    "aggregate_solutions",
    "solution_table",
]

_NAMES = ["Ana", "Ben", "Caro", "Dev", "Eli", "Fay", "Gus", "Hiro", "Ida", "Jon", "Kim", "Lou",
          "Mina", "Nico", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tess"]
_ITEMS = ["apples", "marbles", "stickers", "pencils", "cookies", "cards", "shells", "beads",
          "coins", "stamps", "buttons", "eggs"]
_SPLIT_SALT = {"train": 0, "test": 1, "validation": 2}

# Kinds of sampled solutions and how often the default policy produces them.
SOLUTION_KINDS: tuple[str, ...] = ("clean", "slip", "ignored_slip", "answer_slip")
DEFAULT_KIND_PROBS: dict[str, float] = {"clean": 0.45, "slip": 0.33, "ignored_slip": 0.14, "answer_slip": 0.08}

# running values go below zero in some problems ("0 - 9 = -9", then "-9 + 4 = -5")
_EQUATION = re.compile(r"(-?\d+) ([+\-*]) (\d+) = (-?\d+)")
_ANSWER = re.compile(r"answer is (-?\d+)")
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Problem:
    """A word problem: start value, then operations (op, operand, phrase); `values` are the true
    running values after each operation, `answer` the last one."""

    id: str
    text: str
    start: int
    ops: tuple[tuple[str, int, str], ...]
    values: tuple[int, ...]

    @property
    def answer(self) -> int:
        return self.values[-1]


@dataclass
class Solution:
    """A step-by-step solution: `steps` (texts, the last one states the answer), per-step validity,
    the stated final answer and the kind of solution it was sampled as."""

    problem_id: str
    steps: list[str]
    step_valid: list[bool]
    final_answer: int
    answer_correct: bool
    kind: str
    written: list[int] = field(default_factory=list)  # value each equation step wrote

    @property
    def derivation_valid(self) -> bool:
        return all(self.step_valid)

    def prefix(self, i: int) -> str:
        """The solution text up to and including step i (0-based)."""
        return " ".join(self.steps[: i + 1])

    def text(self) -> str:
        return " ".join(self.steps)


def _check_int(name: str, value: Any, low: int) -> int:
    as_count(value, name, low=-2 ** 62)  # TypeError for a float, a str or a bool
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _probability(value: Any, name: str) -> float:
    value = as_number(value, name)
    if not 0.0 <= value <= 1.0:
        hint = " (a fraction, not a percentage)" if 1 < value <= 100 else ""
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}{hint}")
    return value


def _check_rng(rng: Any) -> random.Random:
    if not isinstance(rng, random.Random):
        hint = ""
        if isinstance(rng, np.random.Generator):
            hint = " (this module draws with Python's random module, not numpy)"
        elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            hint = " (pass random.Random(seed), not the seed)"
        raise TypeError(f"rng must be a random.Random, e.g. random.Random(0), got "
                        f"{type(rng).__name__}{hint}")
    return rng


def _check_problem(problem: Any, name: str = "problem") -> "Problem":
    if not isinstance(problem, Problem):
        hint = " (arguments swapped? the problem comes first)" if isinstance(problem, Solution) else ""
        raise TypeError(f"{name} must be a Problem (make_problems), got {type(problem).__name__}{hint}")
    return problem


def _check_solution(solution: Any, name: str = "solution") -> "Solution":
    if not isinstance(solution, Solution):
        hint = " (arguments swapped? the solution comes second)" if isinstance(solution, Problem) else ""
        raise TypeError(f"{name} must be a Solution (sample_solution), got {type(solution).__name__}{hint}")
    return solution


def _rng(seed: int, *key: Any) -> random.Random:
    return random.Random(zlib.crc32("|".join(map(str, (seed,) + key)).encode()))


def make_problems(n: int, seed: int = 0, split: str = "train") -> list[Problem]:
    """`n` word problems; `split` ("train", "validation", "test") draws from its own seed stream."""
    n = _check_int("n", n, 1)
    if not isinstance(split, str) or split not in _SPLIT_SALT:
        raise ValueError(f"unknown split {split!r} (expected one of {sorted(_SPLIT_SALT)})")
    out = []
    for i in range(n):
        rng = _rng(seed, "problem", split, i)
        name, items = rng.choice(_NAMES), rng.choice(_ITEMS)
        start = value = rng.randint(3, 15)
        sentences = [f"{name} has {value} {items}."]
        ops, values = [], []
        for _ in range(rng.choice([3, 4])):
            kind = rng.choice(["buy", "buy", "give", "give", "times"])
            if kind == "times" and value <= 30:
                k = rng.choice([2, 3])
                op, phrase = "*", "double" if k == 2 else "triple"
                sentences.append(f"Then {name} manages to {phrase} the pile.")
                value = value * k
            elif kind == "give" and value > 3:
                k = rng.randint(1, min(9, value - 1))
                op, phrase = "-", "gives away"
                sentences.append(f"{name} gives {k} {items} to a friend.")
                value = value - k
            else:
                k = rng.randint(2, 9)
                op, phrase = "+", "buys"
                sentences.append(f"{name} buys {k} more {items}.")
                value = value + k
            ops.append((op, k, phrase))
            values.append(value)
        sentences.append(f"How many {items} does {name} have now?")
        out.append(Problem(id=f"{split}-{i:05d}", text=" ".join(sentences),
                           start=start, ops=tuple(ops), values=tuple(values)))
    return out


def _apply(x: int, op: str, k: int) -> int:
    return x + k if op == "+" else x - k if op == "-" else x * k


def _step_text(rng: random.Random, x: int, op: str, k: int, z: int) -> str:
    lead = {"+": ["Adding the new ones:", "After buying more:", "Now add:"],
            "-": ["Taking away the gift:", "After giving some away:", "Now subtract:"],
            "*": ["Multiplying the pile:", "After the pile grows:", "Now multiply:"]}[op]
    return f"{rng.choice(lead)} {x} {op} {k} = {z}."


def _slip(rng: random.Random, z: int) -> int:
    # small slips are the common ones; +-10 (a carry slip) keeps every last digit
    options = [(d, w) for d, w in ((-10, 1), (-2, 2), (-1, 2), (1, 2), (2, 2), (10, 1)) if z + d >= 0]
    return z + rng.choices([d for d, _ in options], weights=[w for _, w in options])[0]


def sample_solution(problem: Problem, rng: random.Random, kind: str | None = None,
                    kind_probs: dict[str, float] | None = None) -> Solution:
    """One solution of `problem` of the given `kind` (or drawn from `kind_probs`)."""
    _check_problem(problem)
    _check_rng(rng)
    probs = DEFAULT_KIND_PROBS if kind_probs is None else kind_probs
    if kind is None:
        if not isinstance(probs, dict):
            raise TypeError(f"kind_probs must be a dict kind -> probability, got {type(probs).__name__}")
        for k, v in probs.items():
            as_number(v, f"kind_probs[{k!r}]")
            if v < 0:
                raise ValueError(f"kind_probs[{k!r}] must be >= 0, got {v}")
        if set(probs) - set(SOLUTION_KINDS) or not math.isclose(sum(probs.values()), 1.0, abs_tol=1e-9):
            total = sum(probs.values())
            hint = " (fractions, not percentages)" if math.isclose(total, 100.0, abs_tol=1e-6) else ""
            raise ValueError(f"kind_probs must give probabilities summing to 1 over {SOLUTION_KINDS}{hint}")
        kind = rng.choices(list(probs), weights=list(probs.values()))[0]
    if kind not in SOLUTION_KINDS:
        raise ValueError(f"unknown solution kind {kind!r} (expected one of {SOLUTION_KINDS})")
    n_ops = len(problem.ops)
    slip_at = -1
    if kind == "slip":
        slip_at = rng.randrange(n_ops)
    elif kind == "ignored_slip":
        slip_at = rng.randrange(n_ops - 1)  # a later step must exist to ignore it
    steps, valid, written = [], [], []
    shown = problem.start  # the value the solution carries forward
    truth = problem.start
    for i, (op, k, _) in enumerate(problem.ops):
        x = shown
        z_true = _apply(x, op, k)
        z = _slip(rng, z_true) if i == slip_at else z_true
        steps.append(_step_text(rng, x, op, k, z))
        valid.append(z == z_true and x == (written[-1] if written else problem.start))
        written.append(z)
        truth = _apply(truth, op, k)
        # an ignored slip: the next step starts again from the right value
        shown = truth if (kind == "ignored_slip" and i == slip_at) else z
    final = written[-1]
    if kind == "answer_slip":
        final = _slip(rng, final)
    steps.append(f"The answer is {final}.")
    valid.append(final == written[-1])
    return Solution(problem_id=problem.id, steps=steps, step_valid=valid, final_answer=final,
                    answer_correct=final == problem.answer, kind=kind, written=written)


def sample_solutions(problems: Sequence[Problem], per_problem: int, seed: int = 0,
                     kind_probs: dict[str, float] | None = None) -> list[list[Solution]]:
    """`per_problem` solutions for each problem (a candidate pool), seeded per problem."""
    per_problem = _check_int("per_problem", per_problem, 1)
    if isinstance(problems, Problem):
        raise TypeError("problems must be a list of Problem, got a single Problem: pass [problem]")
    if isinstance(problems, (str, bytes, dict)) or not hasattr(problems, "__iter__"):
        raise TypeError(f"problems must be a list of Problem (make_problems), got {type(problems).__name__}")
    problems = list(problems)
    for i, p in enumerate(problems):
        _check_problem(p, f"problems[{i}]")
    out = []
    for p in problems:
        rng = _rng(seed, "solutions", p.id)
        out.append([sample_solution(p, rng, kind_probs=kind_probs) for _ in range(per_problem)])
    return out


# ---------------------------------------------------------------------------------------------
# Step labels
# ---------------------------------------------------------------------------------------------


def exact_step_labels(solution: Solution) -> list[bool]:
    """Prefix i is good when steps 0..i are all valid (the first wrong step and everything after
    it are bad): cumulative labels. Lightman et al. instead supervise only up to the first
    incorrect step (later steps carry no label); labelling the rest bad is this course's choice."""
    _check_solution(solution)
    out, ok = [], True
    for v in solution.step_valid:
        ok = ok and bool(v)
        out.append(ok)
    return out


def math_shepherd_rollouts(problem: Problem, solution: Solution, n_completions: int = 4,
                           p_slip: float = 0.15, p_recover: float = 0.1,
                           seed: int = 0) -> list[list[int]]:
    """The final answers of simulated completions from each step prefix: one list of
    `n_completions` answers per step, the answer line included.

    From the prefix ending at step i, the completer carries on from the value step i wrote (or,
    with probability `p_recover`, recomputes the true value from the problem), does the remaining
    operations with a slip probability `p_slip` each, and states the result. The answer line
    needs no completion: its "completions" all state the solution's own final answer.
    """
    _check_problem(problem)
    _check_solution(solution)
    n_completions = _check_int("n_completions", n_completions, 1)
    for name, p in (("p_slip", p_slip), ("p_recover", p_recover)):
        _probability(p, name)
    if solution.problem_id != problem.id:
        raise ValueError(f"solution of {solution.problem_id!r} given with problem {problem.id!r}")
    rng = _rng(seed, "shepherd", solution.problem_id, solution.text())
    out = []
    for i in range(len(problem.ops)):
        answers = []
        for _ in range(n_completions):
            value = problem.values[i] if rng.random() < p_recover else solution.written[i]
            for op, k, _ in problem.ops[i + 1:]:
                value = _apply(value, op, k)
                if rng.random() < p_slip:
                    value = _slip(rng, value)
            answers.append(value)
        out.append(answers)
    out.append([solution.final_answer] * n_completions)
    return out


def math_shepherd_labels(problem: Problem, solution: Solution, n_completions: int = 4,
                         p_slip: float = 0.15, p_recover: float = 0.1, seed: int = 0,
                         soft: bool = False) -> list[float]:
    """Math-Shepherd's automatic step labels from `math_shepherd_rollouts`: hard label 1.0 when
    any completion from the prefix reaches the right answer, soft label the share that do. The
    answer line is right or not (all its "completions" state the solution's answer)."""
    rollouts = math_shepherd_rollouts(problem, solution, n_completions, p_slip, p_recover, seed)
    labels = []
    for answers in rollouts:
        hits = sum(a == problem.answer for a in answers)
        labels.append(hits / len(answers) if soft else float(hits > 0))
    return labels


# ---------------------------------------------------------------------------------------------
# Features and a logistic step classifier
# ---------------------------------------------------------------------------------------------


def _verifier_tokens(text: str) -> list[str]:
    # each check gives a token naming what it saw, plus a token counting the checks, so that a
    # linear model can learn "score = (checks that look right) - (all checks)" = -(wrong checks)
    tokens, last = [], None
    for x, op, y, z in _EQUATION.findall(text):
        tokens += [f"eq:{int(x) % 10}{op}{int(y) % 10}={int(z) % 10}", "n:eq"]
        if last is not None:
            tokens += [f"carry:{last % 10}>{int(x) % 10}", "n:carry"]
        last = int(z)
    for a in _ANSWER.findall(text):
        if last is not None:
            tokens += [f"ans:{last % 10}>{int(a) % 10}", "n:ans"]
    return tokens


def reasoning_features(prompts: Sequence[str], texts: Sequence[str], dim: int = 512,
                       prompt_dim: int = 64, verifier_dim: int = 2048) -> torch.Tensor:
    """Float32 [N, dim + prompt_dim + verifier_dim]: `rmcourse.heads.hashed_features` of
    (prompt, text) plus the hashed last-digit verifier tokens of the text (see the module doc)."""
    from rmcourse.heads import _check_texts, hashed_features

    if isinstance(verifier_dim, bool) or not isinstance(verifier_dim, int) or verifier_dim < 1:
        raise ValueError(f"verifier_dim must be a positive int, got {verifier_dim!r}")
    # strings first: a single string would be read one character per "text"
    prompts = _check_texts(prompts, "prompts")
    texts = _check_texts(texts, "texts")
    if len(prompts) != len(texts):
        raise ValueError(f"{len(prompts)} prompts but {len(texts)} texts")
    # numbers become "#" in the word block: a linear model would otherwise memorise particular
    # numbers, noise that best-of-n selection then picks out; arithmetic goes to the verifier block
    mask = [_NUMBER.sub("#", t) for t in texts]
    words = hashed_features([_NUMBER.sub("#", p) for p in prompts], mask, dim=dim, prompt_dim=prompt_dim)
    ver = np.zeros((len(texts), verifier_dim), dtype=np.float32)
    for i, t in enumerate(texts):
        for tok in _verifier_tokens(t):
            ver[i, zlib.crc32(tok.encode()) % verifier_dim] += 1.0
    return torch.cat([words, torch.from_numpy(ver)], dim=1)  # raw counts: checks add up linearly


@dataclass
class StepClassifier:
    """Logistic regression: P(good) = sigmoid(w . x + b)."""

    weight: torch.Tensor
    bias: torch.Tensor

    @torch.no_grad()
    def predict_proba(self, features: torch.Tensor) -> torch.Tensor:
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"features must be a 2-D torch.Tensor [N, {self.weight.shape[0]}], got "
                            f"{type(features).__name__}")
        if features.ndim != 2 or features.shape[1] != self.weight.shape[0]:
            raise ValueError(f"features must be [N, {self.weight.shape[0]}], got {tuple(features.shape)}")
        return torch.sigmoid(features.float() @ self.weight + self.bias)


def train_step_classifier(features: torch.Tensor, labels, l2: float = 1e-5, max_iter: int = 200,
                          sample_weight=None) -> StepClassifier:
    """L2-regularised logistic regression fitted with full-batch L-BFGS (deterministic).

    `labels` may be hard (0/1) or soft (probabilities, e.g. Math-Shepherd's soft estimation).
    """
    from rmcourse.heads import _feature_matrix

    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a 2-D torch.Tensor, got {type(features).__name__}")
    if features.ndim != 2:
        raise ValueError("features must be a 2-D tensor")
    if features.dtype == torch.bool or features.is_complex():
        raise TypeError(f"features must hold real numbers, got a {features.dtype} tensor")
    _feature_matrix(features.float(), "features")  # NaN / inf: refused, they stop L-BFGS
    checked = as_numbers(labels, "labels", ndim=None, allow_bool=True, allow_empty=True)
    y = torch.as_tensor(labels, dtype=torch.float32)
    if y.shape != (features.shape[0],):
        raise ValueError(f"labels must have one value per row ({features.shape[0]}), got {tuple(y.shape)}")
    outside = np.flatnonzero((checked < 0) | (checked > 1))
    if outside.size:
        i = int(outside[0])
        raise ValueError(f"labels must be in [0, 1] (the probability that the step is good, not a "
                         f"percentage), got {checked[i]} at index {i}")
    if not as_number(l2, "l2") >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    _check_int("max_iter", max_iter, 1)
    if sample_weight is not None:
        w = as_numbers(sample_weight, "sample_weight", ndim=None, low=0)
        if w.shape != (features.shape[0],):
            raise ValueError(f"sample_weight must have one value per row ({features.shape[0]}), got "
                             f"shape {w.shape}")
        if not w.sum() > 0:
            raise ValueError("sample_weight sums to 0: no row would count")
    sw = torch.ones_like(y) if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.float32)
    x = features.float()
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(x @ w + b, y, reduction="none") * sw).sum() / sw.sum()
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return StepClassifier(weight=w.detach().clone(), bias=b.detach().clone())


def aggregate_step_scores(step_scores: Sequence[float], how: str = "min") -> float:
    """A solution's PRM score from its step scores (probabilities): "min" (Math-Shepherd),
    "prod" (Lightman et al.: P(every step is right)) or "last" (the last step's score).

    The scores must be probabilities in [0, 1]: the product of logits or of percentages is not
    a probability (apply a sigmoid to logits, divide percentages by 100)."""
    _check_how(how)
    scores = _step_probabilities(step_scores, "step_scores")
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError("step_scores must be a non-empty list of numbers")
    if how == "min":
        return float(scores.min())
    if how == "prod":
        return float(np.prod(scores))
    if how == "last":
        return float(scores[-1])
    raise ValueError(f"unknown aggregation {how!r} (expected 'min', 'prod' or 'last')")


def _check_how(how: Any) -> None:
    if how not in ("min", "prod", "last"):
        raise ValueError(f"unknown aggregation {how!r} (expected 'min', 'prod' or 'last')")


def _step_probabilities(step_scores: Any, name: str) -> np.ndarray:
    scores = as_numbers(step_scores, name, ndim=None, allow_empty=True)
    outside = np.flatnonzero((scores.reshape(-1) < 0) | (scores.reshape(-1) > 1))
    if outside.size:
        i = int(outside[0])
        raise ValueError(f"{name} must be probabilities in [0, 1], got {scores.reshape(-1)[i]} at index {i} "
                         "(logits? apply a sigmoid first; percentages? divide by 100)")
    return scores


def aggregate_solutions(step_scores, owner, how: str = "min") -> np.ndarray:
    """`aggregate_step_scores` for many solutions at once: `owner[i]` is the solution of step
    score i, and each solution's steps are contiguous and in order (as prefixes are built).
    Step scores are probabilities in [0, 1], as in `aggregate_step_scores`."""
    _check_how(how)
    scores = _step_probabilities(step_scores, "step_scores").reshape(-1)
    owner = np.asarray(owner).reshape(-1)
    if owner.dtype.kind not in "iu":
        raise TypeError(f"owner must hold integer solution indices, got {owner.dtype} values")
    if scores.shape != owner.shape or scores.size == 0:
        raise ValueError("step_scores and owner must be non-empty and of equal length")
    if np.any(np.diff(owner) < 0):
        raise ValueError("owner must be sorted: each solution's steps contiguous")
    starts = np.flatnonzero(np.diff(np.r_[owner[0] - 1, owner]))
    if how == "min":
        return np.minimum.reduceat(scores, starts)
    if how == "prod":
        return np.multiply.reduceat(scores, starts)
    if how == "last":
        return scores[np.r_[starts[1:], scores.size] - 1]
    raise ValueError(f"unknown aggregation {how!r} (expected 'min', 'prod' or 'last')")


def solution_table(problems: Sequence[Problem], pools: Sequence[Sequence[Solution]]) -> pd.DataFrame:
    """One row per solution: problem, candidate index, kind, answer_correct, derivation_valid,
    wrong_derivation (right answer through a wrong step), n_steps, text."""
    problems, pools = list(problems), list(pools)
    if len(problems) != len(pools):
        raise ValueError(f"{len(problems)} problems but {len(pools)} solution pools: one pool per problem")
    rows = []
    for p, pool in zip(problems, pools):
        for j, s in enumerate(pool):
            rows.append({"problem_id": p.id, "candidate": j, "kind": s.kind,
                         "answer_correct": s.answer_correct, "derivation_valid": s.derivation_valid,
                         "wrong_derivation": s.answer_correct and not s.derivation_valid,
                         "n_steps": len(s.steps), "text": s.text()})
    return pd.DataFrame(rows)
