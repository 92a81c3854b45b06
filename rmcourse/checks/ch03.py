"""Checkers for chapter 03 (the reward model). Each takes the learner's function, prints a verdict.

Inputs are small synthetic tensors or a tiny random BERT, so every check runs in well under a
second, and each failure names the first thing that is wrong.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from rmcourse.checking import check, expect
from rmcourse.losses import pairwise_loss

__all__ = [
    "check_last_token_pool",
    "check_stacked_rewards",
    "check_bt_loss",
    "check_centered_loss",
    "check_dead_parameter_count",
    "check_freeze_bottom",
    "tiny_seed_model",
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
    """A fake reward model: reward = sum over real tokens of (id + 1) * (position + 1).

    Padding on the right with mask 0 does not change it, so a correct stacked forward gives the
    same rewards as scoring each side alone. It records the shape of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        expect(isinstance(input_ids, torch.Tensor) and isinstance(attention_mask, torch.Tensor),
               "call model(input_ids, attention_mask) with tensors")
        expect(input_ids.shape == attention_mask.shape,
               f"model got input_ids {tuple(input_ids.shape)} but attention_mask "
               f"{tuple(attention_mask.shape)}: pad both to the same length")
        self.calls.append(tuple(input_ids.shape))
        positions = torch.arange(1, input_ids.shape[1] + 1, dtype=torch.float32)
        return ((input_ids.float() + 1) * positions * attention_mask.float()).sum(dim=1)


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
        pad_id = 7
        chosen = _side([[3, 4, 5], [6, 2], [9, 9, 9, 9, 9, 1]], pad_id)
        rejected = _side([[3, 8], [6, 2, 2, 2], [1]], pad_id)
        reference = _CountingModel()
        want_c = reference(**chosen)
        want_r = reference(**rejected)
        model = _CountingModel()
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
        for name, got, want in (("chosen", got_c, want_c), ("rejected", got_r, want_r)):
            if not torch.allclose(got, want):
                raise AssertionError(
                    f"{name} rewards {got.tolist()} differ from scoring that side alone "
                    f"{want.tolist()}: pad the shorter side with pad_id and attention_mask 0 (on "
                    "the right), keep the row order, and split rewards[:B] / rewards[B:]")

    return check("stacked_rewards", test)


# ----------------------------------------------------------------------------------------------
def _scalar(value: Any, what: str) -> torch.Tensor:
    value = _tensor(value, what)
    expect(value.numel() == 1, f"{what} returned shape {tuple(value.shape)}; expected one number "
                               "(the mean over pairs)")
    return value.reshape(())


def check_bt_loss(fn: Callable) -> bool:
    """Exercise: bt_loss(chosen_rewards, rejected_rewards, margin=None) -> mean of
    -log sigmoid(r_c - r_r - margin); margin is None, a float or one value per pair."""

    def test() -> None:
        chosen = torch.tensor([2.0, 0.5, -1.0, 3.0])
        rejected = torch.tensor([1.0, 0.5, 1.0, -2.0])
        got = _scalar(fn(chosen, rejected), "bt_loss(chosen, rejected)")
        want = pairwise_loss(chosen, rejected)
        if torch.isclose(got, pairwise_loss(rejected, chosen), atol=1e-5):
            raise AssertionError("the loss rewards the wrong side: use r_chosen - r_rejected")
        if torch.isclose(got, -F.logsigmoid(chosen - rejected).sum(), atol=1e-5):
            raise AssertionError(f"you returned the sum ({got.item():.4f}); take the mean over "
                                 "pairs so the loss does not grow with the batch size")
        expect(torch.isclose(got, want, atol=1e-5), f"bt_loss returned {got.item():.5f}, expected "
               f"mean(-log sigmoid(r_c - r_r)) = {want.item():.5f}")
        margin = torch.tensor([1.0, 0.0, 0.5, 2.0])
        got_m = _scalar(fn(chosen, rejected, margin), "bt_loss(..., margin)")
        if torch.isclose(got_m, pairwise_loss(chosen, rejected, margin=-margin), atol=1e-5):
            raise AssertionError("the margin has the wrong sign: it is subtracted, "
                                 "-log sigmoid(r_c - r_r - m), so a pair must be won BY m")
        want_m = pairwise_loss(chosen, rejected, margin=margin)
        expect(torch.isclose(got_m, want_m, atol=1e-5), f"with margins {margin.tolist()} you "
               f"returned {got_m.item():.5f}, expected {want_m.item():.5f}")
        got_f = _scalar(fn(chosen, rejected, 1.0), "bt_loss(..., margin=1.0)")
        expect(torch.isclose(got_f, pairwise_loss(chosen, rejected, margin=1.0), atol=1e-5),
               "a float margin must apply to every pair")
        far = _scalar(fn(torch.tensor([-200.0]), torch.tensor([0.0])), "bt_loss(-200, 0)")
        expect(math.isfinite(far.item()), f"bt_loss(-200, 0) returned {far.item()}: "
               "log(sigmoid(x)) underflows to log(0); use F.logsigmoid")
        expect(abs(far.item() - 200.0) < 1e-3, f"bt_loss(-200, 0) returned {far.item():.4f}, "
                                              "expected 200")
        leaf = chosen.clone().requires_grad_(True)
        loss = _scalar(fn(leaf, rejected), "bt_loss")
        expect(loss.requires_grad, "the loss carries no gradient: keep it a tensor computed from "
                                   "the rewards (no float(), .item(), .detach() or torch.tensor())")
        loss.backward()
        expect(leaf.grad is not None and bool((leaf.grad < 0).all()),
               "the gradient w.r.t. r_chosen must be negative (raising r_chosen lowers the loss); "
               "do not detach or convert to Python numbers")

    return check("bt_loss", test)


def check_centered_loss(fn: Callable) -> bool:
    """Exercise: centered_loss(chosen_rewards, rejected_rewards, coef) -> BT loss (mean) +
    coef * mean((r_c + r_r)^2) (Eisenstein et al. 2023; TRL's center_rewards_coefficient)."""

    def test() -> None:
        chosen = torch.tensor([2.0, 0.5, -1.0, 3.0])
        rejected = torch.tensor([1.0, -0.5, -3.0, 2.0])
        coef = 0.1
        got = _scalar(fn(chosen, rejected, coef), "centered_loss")
        want = pairwise_loss(chosen, rejected, center_coef=coef)
        bt = pairwise_loss(chosen, rejected)
        wrong = {
            "the BT loss alone: add coef * mean((r_c + r_r)^2)": bt,
            "coef * mean((r_c - r_r)^2): centering penalises the SUM r_c + r_r (the level), "
            "not the difference": bt + coef * ((chosen - rejected) ** 2).mean(),
            "coef * (mean(r_c + r_r))^2: square each pair's sum first, then average":
                bt + coef * (chosen + rejected).mean() ** 2,
            "coef * sum((r_c + r_r)^2): use the mean over pairs":
                bt + coef * ((chosen + rejected) ** 2).sum(),
        }
        for message, value in wrong.items():
            if not torch.isclose(value, want) and torch.isclose(got, value, atol=1e-5):
                raise AssertionError(f"you computed {message}")
        expect(torch.isclose(got, want, atol=1e-5), f"centered_loss returned {got.item():.5f}, "
               f"expected {want.item():.5f}")
        zero = _scalar(fn(chosen, rejected, 0.0), "centered_loss(coef=0)")
        expect(torch.isclose(zero, bt, atol=1e-5), "with coef=0 the loss must equal the BT loss")
        shift = _scalar(fn(chosen + 5, rejected + 5, coef), "centered_loss (shifted)")
        expect(bool(shift > got), "adding 5 to every reward must raise the centered loss (the BT "
                                  "part cannot see a shift; only the centering term can)")

    return check("centered_loss", test)


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
