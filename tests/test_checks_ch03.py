"""Each chapter-03 checker accepts a correct solution and names the typical mistakes."""
import torch
import torch.nn.functional as F

from rmcourse.checks import ch03
from rmcourse.pooling import last_token_pool


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def not_done(*args, **kwargs):
    raise NotImplementedError("exercise")


# --- last_token_pool ----------------------------------------------------------------------------
def test_last_token_pool_checker(capsys):
    ok, out = verdict(ch03.check_last_token_pool, last_token_pool, capsys)
    assert ok and out.startswith("✅")

    ok, out = verdict(ch03.check_last_token_pool, lambda h, m: h[:, -1], capsys)
    assert not ok and "under right padding" in out and "hidden[:, -1]" in out

    def by_count(hidden, mask):
        idx = mask.long().sum(1) - 1
        return hidden[torch.arange(hidden.shape[0]), idx]

    ok, out = verdict(ch03.check_last_token_pool, by_count, capsys)
    assert not ok and "under left padding" in out and "mask.sum() - 1" in out

    ok, out = verdict(ch03.check_last_token_pool, lambda h, m: h[:, 0], capsys)
    assert not ok and "first token" in out

    ok, out = verdict(ch03.check_last_token_pool, lambda h, m: h[:, -1:], capsys)
    assert not ok and "expected [3, 4]" in out

    ok, out = verdict(ch03.check_last_token_pool, not_done, capsys)
    assert not ok and out.startswith("⏳")


# --- stacked_rewards ----------------------------------------------------------------------------
def _pad_to(batch, length, pad_id):
    extra = length - batch["input_ids"].shape[1]
    return (F.pad(batch["input_ids"], (0, extra), value=pad_id),
            F.pad(batch["attention_mask"], (0, extra), value=0))


def stacked(model, chosen, rejected, pad_id):
    length = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
    c_ids, c_mask = _pad_to(chosen, length, pad_id)
    r_ids, r_mask = _pad_to(rejected, length, pad_id)
    rewards = model(torch.cat([c_ids, r_ids]), torch.cat([c_mask, r_mask]))
    b = c_ids.shape[0]
    return rewards[:b], rewards[b:]


def test_stacked_rewards_checker(capsys):
    ok, out = verdict(ch03.check_stacked_rewards, stacked, capsys)
    assert ok and out.startswith("✅")

    def two_calls(model, chosen, rejected, pad_id):
        return model(**chosen), model(**rejected)

    ok, out = verdict(ch03.check_stacked_rewards, two_calls, capsys)
    assert not ok and "called 2 times" in out

    def swapped(model, chosen, rejected, pad_id):
        c, r = stacked(model, chosen, rejected, pad_id)
        return r, c

    ok, out = verdict(ch03.check_stacked_rewards, swapped, capsys)
    assert not ok and "swapped" in out

    def mask_of_ones(model, chosen, rejected, pad_id):
        length = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
        c_ids, c_mask = _pad_to(chosen, length, pad_id)
        r_ids, _ = _pad_to(rejected, length, pad_id)
        r_mask = F.pad(rejected["attention_mask"], (0, length - rejected["attention_mask"].shape[1]),
                       value=1)
        rewards = model(torch.cat([c_ids, r_ids]), torch.cat([c_mask, r_mask]))
        return rewards[:3], rewards[3:]

    ok, out = verdict(ch03.check_stacked_rewards, mask_of_ones, capsys)
    assert not ok and "rejected rewards" in out and "attention_mask 0" in out

    def no_padding(model, chosen, rejected, pad_id):
        rewards = model(torch.cat([chosen["input_ids"], rejected["input_ids"]]),
                        torch.cat([chosen["attention_mask"], rejected["attention_mask"]]))
        return rewards[:3], rewards[3:]

    ok, out = verdict(ch03.check_stacked_rewards, no_padding, capsys)
    assert not ok and "RuntimeError" in out  # torch.cat of different lengths, shown with its line

    ok, out = verdict(ch03.check_stacked_rewards, lambda *a: torch.zeros(6), capsys)
    assert not ok and "return a tuple" in out


# --- bt_loss ------------------------------------------------------------------------------------
def bt_loss(chosen, rejected, margin=None):
    margin = 0.0 if margin is None else margin
    return -F.logsigmoid(chosen - rejected - margin).mean()


def test_bt_loss_checker(capsys):
    ok, out = verdict(ch03.check_bt_loss, bt_loss, capsys)
    assert ok and out.startswith("✅")

    def unstable(c, r, margin=None):
        margin = 0.0 if margin is None else margin
        return -torch.log(torch.sigmoid(c - r - margin)).mean()

    ok, out = verdict(ch03.check_bt_loss, unstable, capsys)
    assert not ok and "F.logsigmoid" in out

    ok, out = verdict(ch03.check_bt_loss, lambda c, r, m=None: bt_loss(r, c, m), capsys)
    assert not ok and "wrong side" in out

    def plus_margin(c, r, margin=None):
        margin = 0.0 if margin is None else margin
        return -F.logsigmoid(c - r + margin).mean()

    ok, out = verdict(ch03.check_bt_loss, plus_margin, capsys)
    assert not ok and "wrong sign" in out

    def summed(c, r, margin=None):
        return -F.logsigmoid(c - r - (0.0 if margin is None else margin)).sum()

    ok, out = verdict(ch03.check_bt_loss, summed, capsys)
    assert not ok and "the sum" in out

    def detached(c, r, margin=None):
        return bt_loss(c, r, margin).detach()

    ok, out = verdict(ch03.check_bt_loss, detached, capsys)
    assert not ok and "gradient" in out

    ok, out = verdict(ch03.check_bt_loss, lambda c, r, m=None: -F.logsigmoid(c - r - (0 if m is None else m)), capsys)
    assert not ok and "one number" in out


# --- centered_loss ------------------------------------------------------------------------------
def centered(chosen, rejected, coef):
    return bt_loss(chosen, rejected) + coef * ((chosen + rejected) ** 2).mean()


def test_centered_loss_checker(capsys):
    ok, out = verdict(ch03.check_centered_loss, centered, capsys)
    assert ok and out.startswith("✅")

    wrong = {
        "difference": lambda c, r, k: bt_loss(c, r) + k * ((c - r) ** 2).mean(),
        "square each pair's sum first": lambda c, r, k: bt_loss(c, r) + k * (c + r).mean() ** 2,
        "use the mean over pairs": lambda c, r, k: bt_loss(c, r) + k * ((c + r) ** 2).sum(),
        "BT loss alone": lambda c, r, k: bt_loss(c, r),
        "expected": lambda c, r, k: bt_loss(c, r) + k * (c ** 2 + r ** 2).mean(),
    }
    for message, fn in wrong.items():
        ok, out = verdict(ch03.check_centered_loss, fn, capsys)
        assert not ok and message in out, (message, out)


# --- dead_parameter_count -----------------------------------------------------------------------
def dead_count(model, batch):
    model.zero_grad(set_to_none=True)
    model(**batch).sum().backward()
    return sum(p.numel() for p in model.parameters()
               if p.grad is None or not bool(p.grad.any()))


def test_tiny_seed_model_expected_count_is_pooler_plus_classifier():
    model, batch, expected = ch03.tiny_seed_model()
    hidden = model.backbone.config.hidden_size
    assert expected == (hidden * hidden + hidden) + (hidden + 1)
    assert model(**batch).shape == (4,)


def test_dead_parameter_count_checker(capsys):
    ok, out = verdict(ch03.check_dead_parameter_count, dead_count, capsys)
    assert ok and out.startswith("✅")

    def tensors(model, batch):
        model.zero_grad(set_to_none=True)
        model(**batch).sum().backward()
        return sum(1 for p in model.parameters() if p.grad is None)

    ok, out = verdict(ch03.check_dead_parameter_count, tensors, capsys)
    assert not ok and ".numel()" in out

    def head_only(model, batch):
        return sum(p.numel() for p in model.backbone.classifier.parameters())

    ok, out = verdict(ch03.check_dead_parameter_count, head_only, capsys)
    assert not ok and "pooler" in out

    def everything(model, batch):
        return sum(p.numel() for p in model.parameters())

    ok, out = verdict(ch03.check_dead_parameter_count, everything, capsys)
    assert not ok and "every parameter" in out

    def stale(model, batch):
        model(**batch).sum().backward()  # no zero_grad: old gradients hide dead weights
        return sum(p.numel() for p in model.parameters()
                   if p.grad is None or not bool(p.grad.any()))

    ok, out = verdict(ch03.check_dead_parameter_count, stale, capsys)
    assert not ok and "stale gradients" in out


def _freeze(model, n_layers, embeddings=True, count_tensors=False, top=False):
    bert = model.bert
    layers = list(bert.encoder.layer)
    chosen = layers[-n_layers:] if top and n_layers else layers[:n_layers]
    modules = ([bert.embeddings] if embeddings else []) + chosen
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(False)
    return len(params) if count_tensors else sum(p.numel() for p in params)


def test_freeze_bottom_checker(capsys):
    from rmcourse.freezing import freeze_lower_layers

    assert ch03.check_freeze_bottom(freeze_lower_layers) is True  # the course's own version
    assert ch03.check_freeze_bottom(_freeze) is True
    assert "✅ freeze_bottom" in capsys.readouterr().out
    for wrong, words in [
        (lambda m, n: _freeze(m, n, top=True), "was frozen too"),
        (lambda m, n: _freeze(m, n, embeddings=False), "still has requires_grad=True"),
        (lambda m, n: _freeze(m, n, count_tensors=True), "parameter TENSORS"),
        (lambda m, n: None if _freeze(m, n) else None, "did you forget `return`"),
    ]:
        assert ch03.check_freeze_bottom(wrong) is False
        assert words in capsys.readouterr().out
