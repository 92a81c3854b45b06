"""Checkers for chapter 03 (the reward model). Each takes the learner's function, prints a verdict.

Inputs are small synthetic tensors or a tiny random BERT, so every check runs in seconds, and
each failure names the first thing that is wrong. The training-step checker replays the
batches the course trainer (`rmcourse.trainer.train_reward_model`) fed to a tiny model and
compares the learner's losses and weights with the trainer's, step by step.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F

from rmcourse.checking import check, expect

__all__ = [
    "check_last_token_pool",
    "check_stacked_rewards",
    "check_mean_pool",
    "check_training_step",
    "check_dead_parameter_count",
    "check_freeze_bottom",
    "tiny_seed_model",
    "trainer_replay",
]


def _tensor(value: Any, what: str) -> torch.Tensor:
    expect(value is not None, f"{what} returned None: did you forget `return`?")
    expect(isinstance(value, torch.Tensor), f"{what} returned {type(value).__name__}, "
                                            "expected a torch.Tensor")
    return value


# ----------------------------------------------------------------------------------------------
def _position_hidden(batch: int, seq: int, dim: int = 4) -> torch.Tensor:
    """hidden[b, t] = [b, t, 100 b + t, 1]: the returned vector tells which position was read."""
    hidden = torch.zeros(batch, seq, dim)
    for b in range(batch):
        for t in range(seq):
            hidden[b, t] = torch.tensor([b, t, 100.0 * b + t, 1.0])
    return hidden


def check_last_token_pool(fn: Callable) -> bool:
    """Exercise: last_token_pool(hidden, attention_mask) -> [batch, dim], last REAL token per row,
    correct for right padding and for left padding."""

    def test() -> None:
        cases = {
            "right padding": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]),
            "left padding": torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]),
        }
        for name, mask in cases.items():
            hidden = _position_hidden(*mask.shape)
            out = _tensor(fn(hidden, mask), f"last_token_pool (under {name})")
            expect(tuple(out.shape) == (3, 4), f"under {name} you returned shape "
                   f"{tuple(out.shape)} for hidden [3, 5, 4]; expected [3, 4] (one vector per row)")
            want = (mask.shape[1] - 1 - mask.flip(1).argmax(1)).tolist()
            got = out[:, 1].round().long().tolist()
            for row, (g, w) in enumerate(zip(got, want)):
                if g == w:
                    continue
                hint = ""
                if g == mask.shape[1] - 1:
                    hint = " (hidden[:, -1] is a pad position under right padding)"
                elif g == int(mask[row].sum()) - 1:
                    hint = (" (mask.sum() - 1 counts real tokens, which is the last position "
                            "only when the pads are on the right)")
                elif g == 0:
                    hint = " (that is the first token: a decoder's first token never sees the response)"
                raise AssertionError(f"under {name}, row {row} (mask {mask[row].tolist()}) should "
                                     f"pool position {w}, you pooled position {g}{hint}")
            expect(torch.equal(out[:, 0].round().long(), torch.arange(3)),
                   "rows are mixed up: row b of the output must come from row b of hidden")
        bool_mask = cases["left padding"].bool()
        out = _tensor(fn(_position_hidden(3, 5), bool_mask), "last_token_pool (bool mask)")
        expect(out[:, 1].round().long().tolist() == [4, 4, 4],
               "with a bool attention mask the result changed: convert the mask with .long()")

    return check("last_token_pool", test)


# ----------------------------------------------------------------------------------------------
class _CountingModel:
    """A fake reward model that reads its input the way a transformers decoder does.

    reward = sum over real (mask 1) tokens of (id + 1) * (position + 1), plus 1000 times the
    position of the row's last token, found as transformers' `*ForSequenceClassification`
    decoders find it: the rightmost position whose id is not `pad_id`. Right padding with
    `pad_id` and mask 0 changes nothing, so a correct stacked forward gives the same rewards as
    scoring each side alone; padding with another id moves the "last token" onto the padding.
    It records the shape and the ids of every call."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id
        self.calls: list[tuple[int, int]] = []
        self.inputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        expect(isinstance(input_ids, torch.Tensor) and isinstance(attention_mask, torch.Tensor),
               "call model(input_ids, attention_mask) with tensors")
        expect(input_ids.shape == attention_mask.shape,
               f"model got input_ids {tuple(input_ids.shape)} but attention_mask "
               f"{tuple(attention_mask.shape)}: pad both to the same length")
        self.calls.append(tuple(input_ids.shape))
        self.inputs.append((input_ids.detach().clone(), attention_mask.detach().clone()))
        positions = torch.arange(1, input_ids.shape[1] + 1, dtype=torch.float32)
        content = ((input_ids.float() + 1) * positions * attention_mask.float()).sum(dim=1)
        not_pad = (input_ids != self.pad_id).long()
        last = input_ids.shape[1] - 1 - not_pad.flip(dims=[1]).argmax(dim=1)
        return content + 1000.0 * last.float()


def _side(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    length = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), length), pad_id)
    mask = torch.zeros(len(ids), length, dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def check_stacked_rewards(fn: Callable) -> bool:
    """Exercise: stacked_rewards(model, chosen, rejected, pad_id) -> (chosen_rewards,
    rejected_rewards) with ONE model call on the chosen and rejected rows stacked. `chosen` and
    `rejected` are right-padded batches {"input_ids", "attention_mask"} of different lengths."""

    def test() -> None:
        pad_id = 7  # no real token below has id 7
        chosen = _side([[3, 4, 5], [6, 2], [9, 9, 9, 9, 9, 1]], pad_id)
        rejected = _side([[3, 8], [6, 2, 2, 2], [1]], pad_id)
        reference = _CountingModel(pad_id)
        want_c = reference(**chosen)
        want_r = reference(**rejected)
        model = _CountingModel(pad_id)
        out = fn(model, chosen, rejected, pad_id)
        expect(isinstance(out, tuple) and len(out) == 2,
               f"return a tuple (chosen_rewards, rejected_rewards), got {type(out).__name__}")
        got_c = _tensor(out[0], "stacked_rewards (chosen_rewards)")
        got_r = _tensor(out[1], "stacked_rewards (rejected_rewards)")
        expect(len(model.calls) == 1, f"the model was called {len(model.calls)} times; stack "
               "chosen and rejected into one [2B, L] batch and call it once")
        expect(model.calls[0] == (6, 6), f"the one call got a batch of shape {model.calls[0]}; "
               "expected (6, 6): 3 chosen rows then 3 rejected rows, padded to the longest (6)")
        expect(tuple(got_c.shape) == (3,) and tuple(got_r.shape) == (3,),
               f"expected 3 rewards per side, got shapes {tuple(got_c.shape)} and "
               f"{tuple(got_r.shape)}")
        if torch.allclose(got_c, want_r) and torch.allclose(got_r, want_c):
            raise AssertionError("chosen and rejected rewards are swapped: the first B rows of the "
                                 "stacked batch are the chosen ones")
        ids, mask = model.inputs[0]
        padded_ids = ids[mask == 0].unique().tolist()
        if padded_ids and padded_ids != [pad_id]:
            raise AssertionError(
                f"the padded positions hold id(s) {padded_ids}, not pad_id={pad_id}. A mask of 0 "
                "hides them from attention, but a transformers decoder finds the end of each text "
                "as the rightmost id that is not pad_id, so it would read the padding (the pad == "
                "eos lesson of chapter 03): pad input_ids with pad_id")
        for name, got, want in (("chosen", got_c, want_c), ("rejected", got_r, want_r)):
            if not torch.allclose(got, want):
                raise AssertionError(
                    f"{name} rewards {got.tolist()} differ from scoring that side alone "
                    f"{want.tolist()}: pad the shorter side with pad_id and attention_mask 0 (on "
                    "the right), keep the row order, and split rewards[:B] / rewards[B:]")

    return check("stacked_rewards", test)


# ----------------------------------------------------------------------------------------------
def check_mean_pool(fn: Callable) -> bool:
    """Exercise: mean_pool(hidden, attention_mask) -> [batch, dim], each row's mean over its REAL
    (mask 1) positions, for right and left padding, with a 0/1 integer or bool mask."""
    from rmcourse.pooling import mean_pool

    def test() -> None:
        torch.manual_seed(0)
        masks = {
            "right padding": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]),
            "left padding": torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]),
        }
        for name, mask in masks.items():
            hidden = torch.randn(3, 5, 4)
            hidden[mask == 0] = 50.0  # pads hold big values: averaging them in is obvious
            want = mean_pool(hidden, mask)
            out = _tensor(fn(hidden, mask), f"mean_pool (under {name})")
            expect(tuple(out.shape) == (3, 4), f"under {name} you returned shape "
                   f"{tuple(out.shape)} for hidden [3, 5, 4]; expected [3, 4] (one vector per row)")
            if torch.allclose(out, want, atol=1e-5):
                continue
            m = mask.float().unsqueeze(-1)
            wrong = {
                "you averaged every position, pads included (hidden.mean(dim=1)); weight each "
                "position by its mask and divide by the number of real tokens":
                    hidden.mean(dim=1),
                "you summed the real tokens but divided by the full length L; divide each row by "
                "its own number of real tokens, mask.sum(dim=1)":
                    (hidden * m).sum(dim=1) / mask.shape[1],
                "you divided by the number of real tokens in the whole batch; each row needs its "
                "own count (mask.sum(dim=1, keepdim=True))":
                    (hidden * m).sum(dim=1) / mask.sum(),
                "you returned the sum over real tokens; divide by their number":
                    (hidden * m).sum(dim=1),
                "you read the first real token only, which is first-token pooling":
                    hidden[torch.arange(3), mask.argmax(dim=1)],
            }
            for message, value in wrong.items():
                if torch.allclose(out, value, atol=1e-4):
                    raise AssertionError(f"under {name}: {message}")
            row = next(i for i in range(3) if not torch.allclose(out[i], want[i], atol=1e-5))
            raise AssertionError(f"under {name} row {row} (mask {mask[row].tolist()}) should be "
                                 f"{[round(v, 3) for v in want[row].tolist()]}, you returned "
                                 f"{[round(v, 3) for v in out[row].tolist()]}")
        hidden = torch.randn(3, 5, 4)
        out = _tensor(fn(hidden, masks["left padding"].bool()), "mean_pool (bool mask)")
        expect(torch.allclose(out, mean_pool(hidden, masks["left padding"]), atol=1e-5),
               "with a bool attention mask the result changed: turn the mask into floats "
               "(mask.float() or .to(hidden.dtype)) before multiplying and counting")
        # A row's vector must not depend on how much padding its batch added.
        alone = _tensor(fn(hidden[1:2, :3], torch.ones(1, 3, dtype=torch.long)), "mean_pool")
        padded = _tensor(fn(hidden[1:2], torch.tensor([[1, 1, 1, 0, 0]])), "mean_pool")
        expect(torch.allclose(alone, padded, atol=1e-5), "the same 3 tokens gave a different "
               "vector with 2 pads after them: padding must not change a row's mean")
        leaf = hidden.clone().requires_grad_(True)
        pooled = _tensor(fn(leaf, masks["right padding"]), "mean_pool")
        expect(pooled.requires_grad, "the result carries no gradient: keep the computation in "
                                     "torch (no .detach(), .numpy() or torch.tensor(...))")
        pooled.sum().backward()
        expect(bool((leaf.grad[masks["right padding"] == 0] == 0).all()),
               "padded positions receive a gradient: they must not take part in the mean")

    return check("mean_pool", test)


# ----------------------------------------------------------------------------------------------
REPLAY_STEPS = 4


def _tiny_reward_model(seed: int = 0):
    """A tiny random BERT reward model with MiniLM's tokenizer (fast; no dropout)."""
    from transformers import BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel, load_tokenizer

    tokenizer = load_tokenizer("minilm")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=128,
                        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    return RewardModel(BertForSequenceClassification(config), tokenizer, max_length=128)


def trainer_replay(model=None, pairs=None, config=None, seed: int = 0) -> dict:
    """What the course trainer does in its first steps, recorded so they can be replayed.

    By default on a tiny random BERT, 16 world pairs and `REPLAY_STEPS` steps (what
    `check_training_step` uses); pass `model` (a RewardModel), `pairs` and `config` (a TrainConfig
    with `max_steps`) to record a real run. Returns a dict: `model` (the model, untrained,
    with its dropout rates set to 0 as the trainer runs it), `batches` (the stacked batches the
    trainer fed to the model, recorded by a forward hook, in order), `config`, `losses` and `lrs` (the trainer's history, one row per step),
    `state` (its weights after the last step), and `make_optimizer_and_scheduler(model)`, which
    builds them exactly as the trainer does. The default config warms up then decays (so the
    order of optimizer and scheduler steps matters) and clips at a norm below every step's
    gradient norm (this tiny model's gradients are about 1e-4), so that clipping acts.
    """
    import contextlib
    import copy
    import io

    from rmcourse.trainer import TrainConfig, lr_factor, make_optimizer, train_reward_model
    from rmcourse.world import PreferenceWorld

    if pairs is None:
        pairs = PreferenceWorld(seed=0).pairs("train", 16)
    if config is None:
        config = TrainConfig(lr=5e-3, batch_size=4, max_steps=REPLAY_STEPS, warmup_ratio=0.5,
                             weight_decay=0.01, max_grad_norm=5e-5, max_length=128, bf16=False,
                             group_by_length=False, forward_chunk_size=None, seed=seed,
                             progress=False, log_every=1)
    if not isinstance(config, TrainConfig) or config.max_steps is None:
        raise ValueError("config must be a TrainConfig with max_steps set")
    if config.log_every != 1 or config.grad_accum_steps != 1 or config.forward_chunk_size is not None:
        raise ValueError("config needs log_every=1, grad_accum_steps=1 and forward_chunk_size=None: "
                         "the replay compares every step, one stacked batch each")
    base = _tiny_reward_model(seed) if model is None else model
    if config.disable_dropout:  # as the trainer runs it (TRL's disable_dropout, kept off here)
        for module in base.modules():
            if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                module.p = 0.0
    trained = copy.deepcopy(base)
    batches: list[dict] = []

    def record(_module, _args, kwargs):
        batches.append({k: v.detach().clone() for k, v in kwargs.items() if v is not None})

    handle = trained.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the trainer's one-line data report
            result = train_reward_model(trained, pairs, None, config)
    finally:
        handle.remove()
    total = config.max_steps
    warmup = int(round(config.warmup_ratio * total))

    def make_optimizer_and_scheduler(model):
        optimizer = make_optimizer(model, config)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(min(s, total - 1), total, warmup))
        return optimizer, scheduler

    return {"model": base, "batches": batches, "config": config,
            "losses": result.history["loss"].tolist(), "lrs": result.history["lr"].tolist(),
            "state": {k: v.detach().clone() for k, v in trained.state_dict().items()},
            "make_optimizer_and_scheduler": make_optimizer_and_scheduler}


@functools.lru_cache(maxsize=1)
def _cached_replay() -> dict:
    # Models and batches are copied before use (`_run_steps`), so one replay serves every check.
    return trainer_replay()


def _reference_step(model, batch, optimizer, scheduler, max_grad_norm, mistake=None):
    """The right training step, or one with a named `mistake` (to recognise the learner's)."""
    if mistake != "no zero_grad":
        optimizer.zero_grad(set_to_none=True)
    if mistake == "no token_type_ids":
        batch = {k: v for k, v in batch.items() if k != "token_type_ids"}
    rewards = model(**batch)
    b = rewards.shape[0] // 2
    chosen, rejected = rewards[:b], rewards[b:]
    if mistake == "interleaved":
        chosen, rejected = rewards[0::2], rewards[1::2]
    diff = rejected - chosen if mistake == "sign" else chosen - rejected
    losses = -F.logsigmoid(diff)
    loss = losses.sum() if mistake == "sum" else losses.mean()
    loss.backward()
    if mistake == "scheduler first":
        scheduler.step()
    if mistake != "no clip":
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if mistake not in ("no scheduler", "scheduler first"):
        scheduler.step()
    return float(loss.detach())


_MISTAKES = {
    "no zero_grad": "gradients from the previous step were still in .grad: clear them at the "
                    "start of every step (optimizer.zero_grad(set_to_none=True))",
    "no clip": "the update used an unclipped gradient: call torch.nn.utils.clip_grad_norm_("
               "model.parameters(), max_grad_norm) after backward() and BEFORE optimizer.step() "
               "(clipping after the step changes nothing: the update is already made)",
    "no scheduler": "the learning rate never changed: call scheduler.step() once per step, after "
                    "optimizer.step()",
    "scheduler first": "scheduler.step() ran before optimizer.step(), so every step used the next "
                       "step's learning rate: step the optimizer first, then the scheduler",
    "sign": "the loss rewards the wrong side: -logsigmoid(r_chosen - r_rejected), chosen first",
    "sum": "you summed the per-pair losses; the trainer takes their mean, so the step does not "
           "grow with the batch size",
    "no token_type_ids": "the model never saw the batch's token_type_ids, so every token sat in "
                         "segment 0: the response's segment embedding got no gradient and the weights "
                         "drift although the losses look right. Pass the whole batch: model(**batch)",
    "interleaved": "chosen and rejected are not interleaved: the batch holds the B chosen rows "
                   "first, then the B rejected rows (rewards[:B], rewards[B:])",
}


def _run_steps(step_fn, replay: dict, mistake=None) -> tuple[list, dict]:
    import copy

    model = copy.deepcopy(replay["model"])
    model.train()
    optimizer, scheduler = replay["make_optimizer_and_scheduler"](model)
    losses = []
    for batch in replay["batches"]:
        if mistake is None:
            out = step_fn(model, {k: v.clone() for k, v in batch.items()}, optimizer, scheduler,
                          replay["config"].max_grad_norm)
        else:
            with warnings.catch_warnings():  # torch warns about the scheduler-first mistake
                warnings.simplefilter("ignore")
                out = _reference_step(model, batch, optimizer, scheduler,
                                      replay["config"].max_grad_norm, mistake)
        losses.append(out)
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


@functools.lru_cache(maxsize=None)
def _mistake_run(mistake: str) -> tuple[list, dict]:
    """Losses and final weights of the replay done with one named mistake (computed once)."""
    return _run_steps(None, _cached_replay(), mistake)


def _same_state(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol) for k in a)


# Two runs count as the same update when their final weights differ by less than 5% of the
# reference run's total update (L2 over every weight). Equivalent loss forms (softplus(-d),
# BCE-with-logits on all-ones labels, -logsigmoid(d)) round differently, and AdamW turns that
# rounding into steps of up to the learning rate on weights whose gradient is near 0: measured
# 0.6-0.7% of the update on this replay, while each named mistake moves the weights by 25% or
# more (the summed loss, which AdamW's scale invariance hides from the weights, is told apart by
# its logged loss).
UPDATE_RTOL = 0.05


def _same_update(a: dict, b: dict, start: dict, rtol: float = UPDATE_RTOL) -> bool:
    keys = [k for k in b if b[k].is_floating_point()]
    gap = sum(float(((a[k].float() - b[k].float()) ** 2).sum()) for k in keys) ** 0.5
    size = sum(float(((b[k].float() - start[k].float()) ** 2).sum()) for k in keys) ** 0.5
    return gap <= rtol * size


def check_training_step(fn: Callable) -> bool:
    """Exercise: training_step(model, batch, optimizer, scheduler, max_grad_norm) -> the loss
    (a float) of ONE optimizer step: forward on the stacked batch, mean Bradley-Terry loss,
    backward, clip the gradient norm, optimizer step, scheduler step. Replayed on the batches the
    course trainer used for its first steps; losses and weights must match the trainer's."""

    def test() -> None:
        from rmcourse.checking import as_number

        replay = _cached_replay()
        expect(len(replay["batches"]) == REPLAY_STEPS, "internal: the trainer did not run")
        losses, state = _run_steps(fn, replay)
        losses = [as_number(v, f"training_step (step {i + 1})") for i, v in enumerate(losses)]

        def same_losses(a, b):
            return all(abs(x - y) < 1e-5 for x, y in zip(a, b))

        start = replay["model"].state_dict()
        right_state = _same_update(state, replay["state"], start)
        if right_state and same_losses(losses, replay["losses"]):
            return
        untouched = _same_state(state, start, atol=0.0)
        expect(not untouched, "the weights never changed: call loss.backward() and "
                              "optimizer.step() inside training_step")
        for mistake, message in _MISTAKES.items():
            wrong_losses, wrong_state = _mistake_run(mistake)
            if _same_update(state, wrong_state, start) and same_losses(losses, wrong_losses):
                raise AssertionError(message)
        if right_state:
            step = next(i for i, (g, w) in enumerate(zip(losses, replay["losses"]))
                        if abs(g - w) >= 1e-5)
            raise AssertionError(f"step {step + 1}: the weights are right but you returned loss "
                                 f"{losses[step]:.5f}, the trainer logged "
                                 f"{replay['losses'][step]:.5f}: return the mean loss of this "
                                 "step's forward, computed before the update")
        first = next((i for i, (g, w) in enumerate(zip(losses, replay["losses"]))
                      if abs(g - w) > 1e-4), None)
        where = (f"from step {first + 1} (loss {losses[first]:.5f}, trainer "
                 f"{replay['losses'][first]:.5f})" if first is not None else
                 "although every loss matches (check what happens after backward)")
        raise AssertionError(f"your weights drift from the course trainer's {where}: forward "
                             "the whole stacked batch once, mean -logsigmoid(r_c - r_r), "
                             "backward, clip, optimizer.step(), scheduler.step()")

    return check("training_step", test)


# ----------------------------------------------------------------------------------------------
def tiny_seed_model(seed: int = 0):
    """(seed-style double-head model over a tiny random BERT, an example batch, expected count).

    The expected count is the number of scalar parameters in the wrapped model's own pooler and
    classifier: the seed's forward never computes them, so they get no gradient.
    """
    from transformers import BertConfig, BertForSequenceClassification

    from rmcourse.course_models import SeedDoubleHeadRewardModel

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=1,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = SeedDoubleHeadRewardModel(BertForSequenceClassification(config), dropout=0.0)
    batch = {"input_ids": torch.randint(1, 50, (4, 6)),
             "attention_mask": torch.ones(4, 6, dtype=torch.long)}
    dead = model.backbone.bert.pooler, model.backbone.classifier
    expected = sum(p.numel() for module in dead for p in module.parameters())
    return model, batch, expected


def check_dead_parameter_count(fn: Callable) -> bool:
    """Exercise: dead_parameter_count(model, batch) -> number of scalar parameters that get no
    gradient (grad None or all zero) after one backward of model(**batch).sum()."""

    def test() -> None:
        model, batch, expected = tiny_seed_model()
        total = sum(p.numel() for p in model.parameters())
        got = fn(model, batch)
        expect(got is not None, "dead_parameter_count returned None: did you forget `return`?")
        if isinstance(got, torch.Tensor):
            got = got.item()
        expect(isinstance(got, int) or (isinstance(got, float) and got.is_integer()),
               f"return an int (a count of scalars), got {type(got).__name__}")
        got = int(got)
        if got == 4:
            raise AssertionError("you counted 4 parameter TENSORS (pooler weight and bias, "
                                 "classifier weight and bias); count their elements with .numel()")
        if got == total:
            raise AssertionError(f"you counted every parameter ({total}); count only those whose "
                                 ".grad is None or all zero after backward")
        head = sum(p.numel() for p in model.backbone.classifier.parameters())
        if got == head:
            raise AssertionError(f"{got} is only the classifier; the BERT pooler in front of it is "
                                 "dead too (the seed reads hidden_states[-1][:, 0], not the pooler)")
        expect(got == expected, f"dead_parameter_count returned {got}, expected {expected} "
               "(the wrapped model's pooler + classifier)")
        for p in model.parameters():  # stale gradients from an earlier backward
            p.grad = torch.ones_like(p)
        again = fn(model, batch)
        again = int(again.item() if isinstance(again, torch.Tensor) else again)
        expect(again == expected, f"with stale gradients already in .grad you returned {again}: "
               "clear them first (model.zero_grad(set_to_none=True)), then backward")

    return check("dead_parameter_count", test)


# ----------------------------------------------------------------------------------------------
def _tiny_bert(layers: int = 3, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=16, max_position_embeddings=16,
                        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def check_freeze_bottom(fn: Callable) -> bool:
    """Exercise: freeze_bottom(bert_model, n_layers) freezes the embeddings and the n lowest
    encoder layers of a transformers BERT model and returns how many scalar parameters it froze."""

    def test() -> None:
        model = _tiny_bert()
        bert = model.bert
        parts = [bert.embeddings, *bert.encoder.layer[:2]]
        expected = sum(p.numel() for module in parts for p in module.parameters())
        got = fn(model, 2)
        expect(got is not None, "freeze_bottom returned None: did you forget `return`?")
        got = int(got.item() if isinstance(got, torch.Tensor) else got)
        lower = ("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.1.")
        named = list(model.named_parameters())
        too_many = [n for n, p in named if not p.requires_grad and not n.startswith(lower)]
        too_few = [n for n, p in named if p.requires_grad and n.startswith(lower)]
        expect(not too_many, f"{too_many[0] if too_many else ''} was frozen too: only the "
               "embeddings and the n LOWEST layers (encoder.layer[:n]) should be; the top layers, "
               "pooler and classifier must keep training")
        expect(not too_few, f"{too_few[0] if too_few else ''} still has requires_grad=True: "
               "freeze the embeddings and layers 0 and 1")
        expect(got != len([p for m in parts for p in m.parameters()]),
               f"you returned {got}, the number of parameter TENSORS; count elements with .numel()")
        expect(got == expected, f"freeze_bottom returned {got}, expected {expected} scalar "
               "parameters (embeddings + 2 layers)")
        # What freezing is for: an optimizer step moves the rest and leaves these alone.
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
        ids = torch.randint(1, 50, (4, 6))
        model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.sum().backward()
        optimizer.step()
        for name, param in model.named_parameters():
            if not param.requires_grad:
                expect(torch.equal(param, before[name]), f"frozen {name} moved in a step")
        expect(not torch.equal(model.classifier.weight, before["classifier.weight"]),
               "the classifier did not move in an optimizer step")
        expect(fn(_tiny_bert(), 0) == sum(p.numel() for p in _tiny_bert().bert.embeddings.parameters()),
               "freeze_bottom(model, 0) should freeze the embeddings only")

    return check("freeze_bottom", test)
