"""The course's own reward model: chapter 03's recipe, trained once and reused by later chapters.

`course_reward_model()` returns the MiniLM reward model trained on the preference world with
chapter 03's recipe. It loads the checkpoint from `artifacts/ch03-minilm-rm/` when that exists and
was made by the same recipe (same version, data sizes, hyper-parameters, pooling), and otherwise
trains it (under a minute on 2 idle CPU cores) and saves it atomically. So chapters 05 and 06
never retrain when chapter 03 has run, and still run on their own when it has not.

Also here, for chapter 03: the learning document's double-head model (`SeedDoubleHeadRewardModel`,
kept to show seed errata 1), `count_parameters`, and a small playground that scores two responses.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rmcourse.device import scaled
from rmcourse.trainer import TrainConfig, TrainResult, train_reward_model

__all__ = [
    "ARTIFACT_NAME",
    "RECIPE_VERSION",
    "CourseRecipe",
    "course_recipe",
    "course_splits",
    "course_checkpoint_dir",
    "train_course_reward_model",
    "course_reward_model",
    "SeedDoubleHeadRewardModel",
    "count_parameters",
    "compare_responses",
    "reward_playground",
]

ARTIFACT_NAME = "ch03-minilm-rm"
# Bump when the recipe changes in a way the fields below do not capture (e.g. new data code).
# 4: lr 5e-4 on CPU (5e-5 on GPU), pooling recorded in the recipe.
RECIPE_VERSION = 4


@dataclass(frozen=True)
class CourseRecipe:
    """Everything that decides the chapter-03 checkpoint: base model, data and TrainConfig."""

    n_train: int
    n_val: int
    n_test: int
    config: TrainConfig
    base_model: str = "minilm"
    frozen_layers: int = 0  # embeddings + this many lowest blocks frozen (none when 0)
    pooling: str = "first"  # which vector the head reads: "first" ([CLS]) or "mean"
    world_seed: int = 0
    version: int = RECIPE_VERSION

    def to_dict(self) -> dict:
        """JSON-able identity of the recipe (`progress` is left out: it does not change weights)."""
        from rmcourse.world import WORLD_VERSION  # new world data means a new checkpoint

        config = dataclasses.asdict(self.config)
        config.pop("progress", None)
        return {"version": self.version, "world_version": WORLD_VERSION, "base_model": self.base_model,
                "world_seed": self.world_seed, "n_train": self.n_train, "n_val": self.n_val,
                "n_test": self.n_test, "frozen_layers": self.frozen_layers,
                "pooling": self.pooling, "config": config}


def course_recipe(progress: bool = True) -> CourseRecipe:
    """Chapter 03's recipe: 256 pairs on CPU (under a minute on 2 idle cores), 8000 on a GPU.

    Each CPU choice was measured over three seeds on 400 clean test pairs with
    `benchmarks/ch03_recipe.py` (table and commands in benchmarks/README.md). None of the
    settings tried learnt much beyond the training split's length shortcut: every model was
    right on 0.81-0.92 of the pairs whose better answer is longer and on 0.20-0.33 of those whose
    better answer is shorter, and overall within a few points of the rule "the longer answer wins"
    (0.583). Chapter 03 says so; chapter 05 measures it further.
    - one epoch (InstructGPT and Llama 2 train reward models for one epoch: more overfits);
      AdamW, 10% linear warmup then cosine decay, clipping at norm 1, batches of 8 pairs grouped
      by length, 128 tokens, validation every 16 steps on 64 pairs; dropout off and bf16 autocast
      where the CPU has bf16 units (the trainer's defaults);
    - grouped batches, one stacked forward each: at this recipe's size random batches were as
      accurate (0.604 against 0.602 on 400 test pairs, 3 seeds: `benchmarks/ch03_recipe.py
      --group-by-length 1 0`), although on 1024 pairs at lr 5e-5 grouping cost 1.9 points
      (`benchmarks/bench_vs_trl.py`), which is why the trainer and the CLI default to random
      batches. `forward_chunk_size=None`: grouped rows are of similar length already, and the
      checkpoint that chapters 05-08b read stays the one their text was checked against;
    - CPU: embeddings + the 2 lowest of MiniLM's 6 layers frozen (`rmcourse.freezing`): 21-24%
      less training time (measured in float32, before the trainer used bf16), at no measurable
      cost in accuracy (benchmarks/freeze_ablation.py, re-run for this recipe); not a free
      lunch in general: at lr 5e-5 on 1024 pairs it cost 1.6 points (benchmarks/bench_vs_trl.py);
    - CPU: peak lr 5e-4 (test accuracy 0.606; the length rule 0.583). At 3e-4 (the previous
      recipe) 0.598; at 1e-3 accuracy was not measurably higher (+0.027 [-0.003, 0.057]), and
      both leaned harder on length (right on 0.24 and 0.21 of the pairs whose better answer is
      shorter, against 0.31 at 5e-4). 512 pairs at 1e-3 did no better than 256;
    - [CLS] pooling ("first"): mean pooling, all-MiniLM-L6-v2's own convention, was no better
      (+0.008 [-0.017, 0.033] at lr 5e-4, -0.006 [-0.031, 0.018] at 1e-3), and [CLS] keeps the
      checkpoint a plain transformers model (`AutoModelForSequenceClassification` reads [CLS]);
    - GPU: every layer trains, 8000 pairs, batches of 32, lr 5e-5, the top of the BERT paper's
      fine-tuning grid (2e-5..5e-5). The CPU's 5e-4 was chosen for 32 steps with a frozen
      bottom, not for 250 steps of full fine-tuning. Not yet run on a GPU.
    """
    config = TrainConfig(lr=scaled(5e-4, 5e-5), batch_size=scaled(8, 32), epochs=1.0,
                         warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1.0, max_length=128,
                         group_by_length=True, forward_chunk_size=None, eval_every=scaled(16, 50),
                         eval_batch_size=scaled(32, 128), seed=0, progress=progress)
    return CourseRecipe(n_train=scaled(256, 8000), n_val=scaled(64, 512),
                        n_test=scaled(200, 1000), config=config, frozen_layers=scaled(2, 0),
                        pooling="first")


def course_splits(recipe: CourseRecipe | None = None) -> dict[str, Any]:
    """The recipe's data from `PreferenceWorld(seed=recipe.world_seed)`: train, val, test.

    train/val carry simulated (noisy) annotator labels; test is the world's clean split (chosen
    has the higher gold reward), so test accuracy measures the model, not the annotators.
    """
    from rmcourse.world import PreferenceWorld

    recipe = course_recipe() if recipe is None else recipe
    if not isinstance(recipe, CourseRecipe):
        raise TypeError(f"recipe must be a CourseRecipe, got {type(recipe).__name__}")
    world = PreferenceWorld(seed=recipe.world_seed)
    return {"train": world.pairs("train", recipe.n_train),
            "val": world.pairs("validation", recipe.n_val),
            "test": world.pairs("test", recipe.n_test)}


def course_checkpoint_dir() -> Path:
    """`artifacts/ch03-minilm-rm` (git-ignored; see `rmcourse.paths.artifacts_dir`)."""
    from rmcourse.paths import artifacts_dir

    return artifacts_dir() / ARTIFACT_NAME


_RESULT_FIELDS = ("best_step", "best_val_accuracy", "stopped_early", "pairs_per_second",
                  "train_seconds", "n_steps", "n_train_pairs", "restored_best")


def _history_records(result: TrainResult) -> list[dict]:
    # NaN (no validation on that step) becomes None so the metadata stays strict JSON.
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in result.history.to_dict("records")]


def train_course_reward_model(recipe: CourseRecipe | None = None, save: bool = True,
                              progress: bool = True, splits: dict | None = None):
    """Train chapter 03's reward model from scratch; returns `(model, result)`.

    With `save=True` the checkpoint is written atomically to `course_checkpoint_dir()`, with the
    recipe and the training history in its metadata, for `course_reward_model()` to reuse.
    `splits` lets a caller pass data it already built with `course_splits(recipe)`.
    """
    from rmcourse.freezing import freeze_lower_layers
    from rmcourse.models import load_reward_model

    recipe = course_recipe(progress=progress) if recipe is None else recipe
    if not isinstance(recipe, CourseRecipe):
        raise TypeError(f"recipe must be a CourseRecipe, got {type(recipe).__name__}")
    data = course_splits(recipe) if splits is None else splits
    missing = {"train", "val"} - set(data)
    if missing:
        raise ValueError(f"splits is missing {sorted(missing)}; build it with course_splits(recipe)")
    if len(data["train"]) != recipe.n_train or len(data["val"]) != recipe.n_val:
        raise ValueError(f"splits do not match the recipe: train {len(data['train'])} vs "
                         f"{recipe.n_train}, val {len(data['val'])} vs {recipe.n_val}")
    model = load_reward_model(recipe.base_model, seed=recipe.config.seed,
                              max_length=recipe.config.max_length, pooling=recipe.pooling)
    if recipe.frozen_layers:
        freeze_lower_layers(model, recipe.frozen_layers)
    result = train_reward_model(model, data["train"], data["val"], recipe.config)
    if save:
        model.save_pretrained(course_checkpoint_dir(), metadata={
            "course_recipe": recipe.to_dict(),
            "history": _history_records(result),
            "train_result": {name: getattr(result, name) for name in _RESULT_FIELDS},
        })
    return model, result


def _saved_recipe(path: Path) -> dict | None:
    from rmcourse.models import METADATA_FILE

    try:
        info = json.loads((path / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    return (info.get("metadata") or {}).get("course_recipe")


def _stored_result(metadata: dict, recipe: CourseRecipe) -> TrainResult:
    """The TrainResult of the run that made a checkpoint, rebuilt from its metadata."""
    import pandas as pd

    from rmcourse.trainer import HISTORY_COLUMNS

    history = pd.DataFrame(metadata.get("history") or [], columns=HISTORY_COLUMNS)
    history = history.astype(float).astype({"step": int})
    fields = metadata.get("train_result") or {}
    return TrainResult(history=history, config=recipe.config,
                       **{name: fields.get(name) for name in _RESULT_FIELDS})


def course_reward_model(retrain: bool = False, progress: bool = True,
                        return_result: bool = False, splits: dict | None = None):
    """Chapter 03's trained reward model: loaded from its checkpoint, or trained (and saved).

    Loads `artifacts/ch03-minilm-rm` when it exists and its recipe matches `course_recipe()`;
    otherwise, or with `retrain=True`, trains it with `train_course_reward_model()` first.
    With `return_result=True` returns `(model, TrainResult)`; for a loaded checkpoint the result
    (history, timings) is the one stored when it was trained. `splits` may pass data already
    built with `course_splits()` (used only when training).
    """
    from rmcourse.models import RewardModel

    for name, value in (("retrain", retrain), ("return_result", return_result)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    recipe = course_recipe(progress=progress)
    path = course_checkpoint_dir()
    saved = _saved_recipe(path)
    if not retrain and saved == recipe.to_dict():
        try:
            model = RewardModel.from_pretrained(path)
        except Exception as err:  # an unreadable checkpoint is rebuilt, not fatal
            print(f"the saved chapter-03 model could not be loaded ({type(err).__name__}); "
                  "retraining it")
        else:
            model.eval()
            print(f"loaded the chapter-03 reward model from artifacts/{ARTIFACT_NAME} "
                  "(same recipe; retrain=True trains it again)")
            return (model, _stored_result(model.metadata, recipe)) if return_result else model
    elif not retrain:
        reason = "none saved yet" if saved is None else "saved with another recipe"
        print(f"chapter-03 reward model: {reason}; training it now "
              "(under a minute on an idle 2-core CPU)")
    model, result = train_course_reward_model(recipe, save=True, progress=progress, splits=splits)
    model.eval()
    return (model, result) if return_result else model


# ---------------------------------------------------------------- seed errata 1
class SeedDoubleHeadRewardModel(nn.Module):
    """The learning document's RewardModel, kept to show what is wrong with it (errata 1, 2).

    It wraps a `*ForSequenceClassification` (which already ends in its own head) and adds a
    second head on the last hidden state of the FIRST token. The wrapped model's own head (and,
    for BERT, the pooler in front of it) is computed by nobody: dead weight. Pass an already
    loaded transformers model so no extra load is needed.
    """

    def __init__(self, hf_model: nn.Module, dropout: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        if not hasattr(hf_model, "config") or not hasattr(hf_model.config, "hidden_size"):
            raise TypeError(f"hf_model must be a transformers model, got {type(hf_model).__name__}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.backbone = hf_model
        self.dropout = nn.Dropout(dropout)
        self.reward_head = nn.Linear(hf_model.config.hidden_size, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            nn.init.normal_(self.reward_head.weight, std=0.02)
        nn.init.zeros_(self.reward_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **kwargs: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            output_hidden_states=True, **kwargs)
        cls = out.hidden_states[-1][:, 0, :]  # the seed reads the first token, whatever the model
        return self.reward_head(self.dropout(cls)).squeeze(-1)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (elements, not tensors) in `module`."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------- playground
def compare_responses(model, prompt: str, response_a: str, response_b: str) -> dict:
    """Rewards of two responses to one prompt and P(a preferred over b) = sigmoid(r_a - r_b)."""
    for name, text in (("prompt", prompt), ("response_a", response_a), ("response_b", response_b)):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    for name, text in (("response_a", response_a), ("response_b", response_b)):
        if not text.strip():
            raise ValueError(f"empty text in {name}")
    if not hasattr(model, "score"):
        raise TypeError(f"model must be an rmcourse RewardModel, got {type(model).__name__}")
    rewards = model.score([prompt, prompt], [response_a, response_b])
    r_a, r_b = float(rewards[0]), float(rewards[1])
    return {"reward_a": r_a, "reward_b": r_b,
            "p_a_over_b": float(torch.sigmoid(torch.tensor(r_a - r_b)))}


def reward_playground(model, prompt: str = "", response_a: str = "", response_b: str = ""):
    """An ipywidgets box: type a prompt and two responses, press Score, read both rewards.

    When both responses are given, the box opens already scored, so a saved notebook (and a
    reader on the web, without a kernel) shows the rewards of the example it was built with.
    """
    import ipywidgets as widgets

    layout = widgets.Layout(width="95%")
    boxes = {
        "prompt": widgets.Textarea(value=prompt, description="prompt", layout=layout),
        "a": widgets.Textarea(value=response_a, description="response A", layout=layout),
        "b": widgets.Textarea(value=response_b, description="response B", layout=layout),
    }
    button = widgets.Button(description="Score", button_style="primary")
    out = widgets.Output()

    def show(text: str) -> None:
        # Set the output directly (not `with out: print`), which also works outside a kernel.
        out.outputs = ({"output_type": "stream", "name": "stdout", "text": text + "\n"},)

    def on_click(_=None) -> None:
        try:
            r = compare_responses(model, boxes["prompt"].value, boxes["a"].value, boxes["b"].value)
        except (ValueError, TypeError) as err:
            show(f"cannot score: {err}")
            return
        show(f"reward(A) = {r['reward_a']:+.3f}   reward(B) = {r['reward_b']:+.3f}   "
             f"P(A preferred over B) = {r['p_a_over_b']:.3f}")

    button.on_click(on_click)
    if response_a.strip() and response_b.strip():
        on_click()
    return widgets.VBox([boxes["prompt"], boxes["a"], boxes["b"], button, out])
