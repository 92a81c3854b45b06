"""Checkers for chapter 04 (training fast). Each takes the learner's function and prints a verdict.

The model-based checks use tiny randomly initialised BERTs (2 layers, dropout off) with MiniLM's
tokenizer and a few preference-world pairs, so they run in about a second and compare against
`rmcourse.throughput` / `rmcourse.tokenization`. The prefix-sharing check compares a mask and
position ids with the rules of `rmcourse.prefix_sharing.pair_mask_and_positions`, entry by entry.
"""
from __future__ import annotations

import functools
import itertools
import random
from typing import Any, Callable

import torch

from rmcourse.checking import as_number, check, expect

__all__ = [
    "check_stacked_rewards",
    "check_padding_waste",
    "check_flops_utilization",
    "check_training_memory",
    "check_length_grouped_batches",
    "check_accumulate_gradients",
    "check_pair_mask_and_positions",
]


def _bert(hidden: int, intermediate: int, seed: int) -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel

    tokenizer = _tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=intermediate,
                        max_position_embeddings=256, num_labels=1, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RewardModel(BertForSequenceClassification(config), tokenizer)


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    from rmcourse.models import bundled_model_path, quiet_transformers

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])


@functools.lru_cache(maxsize=1)
def _rows() -> list[dict]:
    """8 tokenized preference-world pairs (input ids and token type ids only)."""
    from rmcourse.tokenization import tokenize_pairs
    from rmcourse.world import PreferenceWorld

    tok, _ = tokenize_pairs(PreferenceWorld(0).pairs("train", 8), _tokenizer(), 192)
    columns = [c for c in tok.column_names if c.endswith(("_input_ids", "_token_type_ids"))]
    return tok.select_columns(columns).to_list()


@functools.lru_cache(maxsize=1)
def _tiny() -> tuple[Any, list[dict], Any]:
    """(tiny RewardModel on CPU: width 32, 8 tokenized pair rows, PairCollator)."""
    from rmcourse.tokenization import PairCollator

    return _bert(32, 64, seed=4), _rows(), PairCollator(_tokenizer(), 192)


class _CountingModel(torch.nn.Module):
    """Wraps a model, counts forward calls and keeps what each call received."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[dict[str, torch.Tensor]] = []

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        names = ("input_ids", "attention_mask", "token_type_ids")
        self.calls.append({**dict(zip(names, args)), **kwargs})
        return self.inner(*args, **kwargs)

    def pair_rewards(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("model.pair_rewards is the course's finished version of this exercise: "
                             "build the [2B, L] batch yourself and call model(input_ids=..., "
                             "attention_mask=...) once")


def _pair(out: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    expect(out is not None, f"{what} returned None: did you forget `return`?")
    expect(isinstance(out, (tuple, list)) and len(out) == 2,
           f"{what} must return a pair (chosen_rewards, rejected_rewards), got {type(out).__name__}")
    chosen, rejected = out
    expect(isinstance(chosen, torch.Tensor) and isinstance(rejected, torch.Tensor),
           f"{what} must return two tensors")
    return chosen, rejected


# ----------------------------------------------------------------------------------------------
def check_stacked_rewards(fn: Callable) -> bool:
    """Exercise: stacked_rewards(model, chosen_ids, rejected_ids, pad_id) -> (chosen, rejected):
    right-pad all 2B rows with `pad_id`, ONE forward over the stacked [2B, L] batch."""

    def run(pad_id: int) -> tuple[_CountingModel, torch.Tensor, torch.Tensor, list[list[int]]]:
        model, rows, _ = _tiny()
        model.eval()
        chosen_ids = [list(r["chosen_input_ids"]) for r in rows[:4]]
        rejected_ids = [list(r["rejected_input_ids"]) for r in rows[:4]]
        counted = _CountingModel(model)
        with torch.no_grad():
            chosen, rejected = _pair(fn(counted, chosen_ids, rejected_ids, pad_id), "stacked_rewards")
        return counted, chosen, rejected, chosen_ids + rejected_ids

    def reference(seqs: list[list[int]], pad_id: int) -> torch.Tensor:
        model = _tiny()[0]
        width = max(map(len, seqs))
        ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask)

    def test() -> None:
        # A pad id that is not BERT's [PAD] (0): decoders pad with their own id, and
        # transformers' decoder pooling finds the last real token by that id (chapter 03).
        pad_id = 3
        counted, chosen, rejected, seqs = run(pad_id)
        b = len(seqs) // 2
        expect(len(counted.calls) == 1, f"the model was called {len(counted.calls)} times; stack "
                                        "chosen and rejected into ONE forward over all 2B rows")
        call = counted.calls[0]
        ids, mask = call.get("input_ids"), call.get("attention_mask")
        expect(isinstance(ids, torch.Tensor) and isinstance(mask, torch.Tensor),
               "pass input_ids and attention_mask (tensors) to the model")
        expect(tuple(ids.shape) == (2 * b, max(map(len, seqs))),
               f"input_ids must be [2B, longest row] = {(2 * b, max(map(len, seqs)))}, got "
               f"{tuple(ids.shape)}: pad to the longest of the 2B rows, not to a fixed length")
        lengths = mask.sum(dim=1).tolist()
        expect(lengths == [len(s) for s in seqs],
               "attention_mask must be 1 on each row's real tokens and 0 on its padding")
        expect(bool((mask[:, 0] == 1).all()) and all(int(mask[i, :n].sum()) == n for i, n in enumerate(lengths)),
               "pad on the right: real tokens first, padding after (an encoder reads position 0)")
        pads = ids[mask == 0]
        if pads.numel() and not bool((pads == pad_id).all()):
            used = sorted(set(pads.tolist()))
            raise AssertionError(f"padding positions hold id(s) {used[:3]}, but pad_id is {pad_id}: "
                                 "pad with the id you are given. A decoder's transformers pooling "
                                 "finds the last real token by the pad id; padding with another "
                                 "id (or with eos, when pad == eos) reads the wrong position")
        expect(tuple(chosen.shape) == (b,) and tuple(rejected.shape) == (b,),
               f"expected {b} chosen and {b} rejected rewards, got shapes {tuple(chosen.shape)} and "
               f"{tuple(rejected.shape)}: rows 0..B-1 are chosen, rows B..2B-1 rejected")
        want = reference(seqs, pad_id)
        if torch.allclose(chosen, want[b:], atol=1e-5) and torch.allclose(rejected, want[:b], atol=1e-5):
            raise AssertionError("chosen and rejected are swapped: put the B chosen rows FIRST")
        expect(torch.allclose(chosen, want[:b], atol=1e-5) and torch.allclose(rejected, want[b:], atol=1e-5),
               f"rewards differ from the reference: got chosen {chosen.tolist()}, expected "
               f"{want[:b].tolist()}")
        _, chosen0, _, _ = run(0)  # and with BERT's own pad id
        expect(torch.allclose(chosen0, want[:b], atol=1e-5),
               "with pad_id=0 the rewards changed: padding must be masked out, whatever its id")

    return check("stacked_rewards", test)


# ----------------------------------------------------------------------------------------------
def check_padding_waste(fn: Callable) -> bool:
    """Exercise: padding_waste(lengths, batches) -> share of padded positions (each batch padded
    to its own longest row)."""

    def test() -> None:
        from rmcourse.tokenization import padding_fraction

        got = fn([3, 1], [[0, 1]])
        expect(got is not None, "padding_waste returned None: did you forget `return`?")
        expect(isinstance(got, (float, int)) and not isinstance(got, bool),
               f"padding_waste must return a float, got {type(got).__name__}")
        expect(abs(got - 2 / 6) < 1e-9, f"lengths [3, 1] in one batch pad to 3 x 2 = 6 positions, "
                                        f"2 of them padding: expected 0.333, got {got:.4g}")
        one_batch = fn([10, 1, 10, 1], [[1, 3], [0, 2]])
        expect(abs(one_batch) < 1e-12,
               f"batches [1, 1] and [10, 10] pad nothing (each batch pads to ITS longest row, "
               f"not the longest overall); got {one_batch:.4g}")
        expect(abs(fn([5, 5, 2], [[0, 1], [2]])) < 1e-12,
               "batches whose rows have equal lengths waste nothing: expected 0.0")
        spread = fn([10, 1, 10, 1], [[0, 1], [2, 3]])
        expect(abs(spread - (1 - 22 / 40)) < 1e-9,
               f"lengths [10, 1] and [10, 1]: expected {1 - 22 / 40:.3f}, got {spread:.4g}")
        rng = random.Random(0)
        lengths = [rng.randint(5, 200) for _ in range(50)]
        order = list(range(50))
        rng.shuffle(order)
        batches = [order[i:i + 8] for i in range(0, 50, 8)]
        want = padding_fraction(lengths, batches)
        got = fn(lengths, batches)
        expect(abs(got - want) < 1e-9, f"random case: expected {want:.4f}, got {got:.4f}")

    return check("padding_waste", test)


# ----------------------------------------------------------------------------------------------
def check_flops_utilization(fn: Callable) -> bool:
    """Exercise: flops_utilization(model, attention_masks, seconds, peak_flops,
    recompute_forward=False) -> (mfu, hfu)."""

    def test() -> None:
        model = _tiny()[0]
        params = sum(p.numel() for p in model.parameters())
        embeddings = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding)
                         for p in m.parameters())
        n = params - embeddings
        masks = [torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]), torch.tensor([[1] * 6 + [0] * 2] * 3)]
        real, positions = 5 + 18, 8 + 24
        seconds, peak = 0.5, 1e12
        out = fn(model, masks, seconds, peak)
        expect(out is not None, "flops_utilization returned None: did you forget `return`?")
        expect(isinstance(out, (tuple, list)) and len(out) == 2,
               f"return a pair (mfu, hfu), got {type(out).__name__}")
        mfu, hfu = (as_number(v, "flops_utilization") for v in out)
        want = 6 * n * real / seconds / peak
        if abs(mfu - want * params / n) < 1e-9 * want * params / n:
            raise AssertionError("you counted the embedding tables: an embedding is a lookup, not a "
                                 "matrix multiply, so leave nn.Embedding parameters out of N")
        if abs(mfu - want * positions / real) < 1e-9 * want * positions / real:
            raise AssertionError("you counted padded positions: count only attention_mask == 1, "
                                 "padding is compute wasted, not work the model needed")
        for factor, wrong in ((2, "2 N per token is the forward pass only; training adds the "
                                  "backward, about twice the forward: 6 N"),
                              (8, "8 N is what the hardware does when the forward is recomputed; "
                                  "MFU counts the 6 N the model needs")):
            if abs(mfu - want * factor / 6) < 1e-9 * want:
                raise AssertionError(wrong)
        expect(abs(mfu - want) < 1e-9 * want,
               f"MFU = 6 x {n} matmul parameters x {real} real tokens / {seconds} s / {peak:g} "
               f"FLOP/s = {want:.4g}, got {mfu:.4g}")
        expect(abs(hfu - mfu) <= 1e-9 * mfu, "without recomputation the hardware does exactly the model's "
                                       "work: hfu must equal mfu")
        mfu2, hfu2 = (as_number(v, "flops_utilization") for v in fn(model, masks, seconds, peak,
                                                                      recompute_forward=True))
        expect(abs(mfu2 - want) < 1e-9 * want,
               "with recompute_forward=True MFU must not change: it counts the work the model "
               "needs (6 N per token), not the extra forward the hardware repeats")
        expect(abs(hfu2 - want * 8 / 6) < 1e-9 * want,
               f"with recompute_forward=True the hardware runs the forward twice: 2 + 2 + 4 = 8 N "
               f"per token, so HFU = {want * 8 / 6:.4g}, got {hfu2:.4g}")

    return check("flops_utilization", test)


@functools.lru_cache(maxsize=1)
def _wide() -> tuple[Any, dict[str, torch.Tensor]]:
    """(a wider tiny BERT, width 128, embeddings frozen; one collated pair): big weight matrices
    next to small activations, so counting a weight as an activation shows."""
    from rmcourse.tokenization import PairCollator

    model = _bert(128, 512, seed=5)
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            module.weight.requires_grad_(False)
    return model, PairCollator(_tokenizer(), 192)(_rows()[:1])


def _memory_reference(model: torch.nn.Module, batch: dict) -> dict[str, int]:
    from rmcourse.throughput import activation_memory

    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    model.train()
    return {"weights": weights, "gradients": grads, "adamw": 2 * grads,
            "activations": activation_memory(model, batch)}


def _saved_parameter_bytes(model: torch.nn.Module, batch: dict) -> int:
    """Bytes of parameter storages autograd saves in one forward (a Linear keeps its weight)."""
    params = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = tensor.untyped_storage().data_ptr()
        if key in params:
            seen[key] = params[key]
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch)
    return sum(seen.values())


def check_training_memory(fn: Callable) -> bool:
    """Exercise: training_memory(model, batch) -> dict of bytes: weights, gradients, adamw,
    activations (what one training step of `batch` holds besides the optimizer's code)."""

    def test() -> None:
        model, batch = _wide()
        want = _memory_reference(model, batch)
        model.train()
        got = fn(model, dict(batch))
        expect(got is not None, "training_memory returned None: did you forget `return`?")
        expect(isinstance(got, dict), f"return a dict, got {type(got).__name__}")
        missing = [k for k in want if k not in got]
        expect(not missing, f"the dict needs the keys {list(want)}; missing {missing}")
        got = {k: as_number(got[k], f"training_memory()[{k!r}]") for k in want}
        all_params = want["weights"]
        if got["weights"] == want["gradients"]:
            raise AssertionError("weights: frozen parameters (here the embeddings) are in memory too: "
                                 "count every parameter, trainable or not")
        if got["weights"] * 4 == all_params:
            raise AssertionError("weights: count bytes (numel x element_size), not elements")
        expect(got["weights"] == all_params, f"weights: expected {all_params} bytes, got {got['weights']:.0f}")
        if got["gradients"] == all_params:
            raise AssertionError("gradients: a frozen parameter (requires_grad=False) gets no .grad; "
                                 "count only trainable parameters")
        expect(got["gradients"] == want["gradients"],
               f"gradients: one per trainable parameter, same dtype: expected {want['gradients']} "
               f"bytes, got {got['gradients']:.0f}")
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
        model(**batch).sum().backward()
        optimizer.step()
        state = sum(t.numel() * t.element_size() for s in optimizer.state.values()
                    for name, t in s.items() if name in ("exp_avg", "exp_avg_sq"))
        model.zero_grad(set_to_none=True)
        assert state == want["adamw"], "internal: the reference disagrees with torch's AdamW"
        if got["adamw"] == want["gradients"]:
            raise AssertionError("adamw: AdamW keeps TWO tensors per trainable parameter, the moving "
                                 "averages of the gradient (exp_avg) and of its square (exp_avg_sq)")
        if got["adamw"] == 2 * all_params:
            raise AssertionError("adamw: the optimizer only holds state for the parameters it "
                                 "updates; frozen ones have none")
        expect(got["adamw"] == want["adamw"], f"adamw: expected {want['adamw']} bytes "
                                              f"(what torch's AdamW holds after a step), got {got['adamw']:.0f}")
        act, ref = got["activations"], want["activations"]
        if act == 0:
            raise AssertionError("activations: 0 bytes. Under torch.no_grad (or inference_mode) "
                                 "autograd saves nothing; run the forward with gradients on")
        if abs(act - ref * 0.25) < 0.1 * ref * 0.25:
            raise AssertionError("activations: count bytes (numel x element_size), not elements")
        with_params = ref + _saved_parameter_bytes(model, batch)
        if abs(act - with_params) < 0.1 * with_params:
            raise AssertionError("activations: you counted weights. A Linear saves its weight for "
                                 "the backward too (often as a transposed view), but weights exist "
                                 "anyway: skip tensors whose storage is a parameter's")
        if act > 1.1 * ref:
            raise AssertionError(f"activations: {act:.0f} bytes is more than the {ref} the saved "
                                 "tensors occupy: a tensor saved twice (or two views of one storage) "
                                 "takes the memory once; count each storage once")
        expect(act > 0.9 * ref, f"activations: expected about {ref} bytes (every non-parameter "
                                f"tensor autograd saves in one forward), got {act:.0f}")

    return check("training_memory", test)


# ----------------------------------------------------------------------------------------------
def check_length_grouped_batches(fn: Callable) -> bool:
    """Exercise: length_grouped_batches(lengths, batch_size, seed) -> list of index lists.

    Accepts either batch order the exercise allows: shuffled (the course) or each mega-batch
    longest first (transformers' LengthGroupedSampler). Rejects what never changes between epochs.
    """

    def test() -> None:
        from rmcourse.tokenization import padding_fraction

        rng = random.Random(1)
        # distinct lengths (5 mega-batches of 50 x 4, plus 3): with ties, a global sort of
        # shuffled rows would let the seed reorder equal lengths and pass for "different batches"
        lengths = rng.sample(range(20, 3000), 1003)
        bs = 4
        batches = fn(lengths, bs, 0)
        expect(batches is not None, "length_grouped_batches returned None: did you forget `return`?")
        batches = [[int(i) for i in b] for b in batches]
        flat = [i for b in batches for i in b]
        expect(sorted(flat) == list(range(len(lengths))),
               "every index must appear exactly once across the batches "
               f"(got {len(flat)} indices for {len(lengths)} rows, {len(set(flat))} distinct)")
        expect(all(0 < len(b) <= bs for b in batches), "every batch must hold 1..batch_size rows")
        short = sum(len(b) < bs for b in batches)
        expect(short <= 1, f"{short} batches are smaller than batch_size; only one (the remainder) "
                           "may be")
        order = list(range(len(lengths)))
        random.Random(0).shuffle(order)
        random_waste = padding_fraction(lengths, [order[i:i + bs] for i in range(0, len(order), bs)])
        waste = padding_fraction(lengths, batches)
        expect(waste < 0.5 * random_waste,
               f"padding waste {waste:.1%} is not much below random batches' {random_waste:.1%}: "
               "sort (chunks of) the rows by length before cutting batches")
        again = [[int(i) for i in b] for b in fn(lengths, bs, 0)]
        expect(again == batches, "the same seed must give the same batches (seed your RNG)")
        other = [[int(i) for i in b] for b in fn(lengths, bs, 1)]
        expect(other != batches, "a different seed gives identical batches: shuffle with the seed, "
                                 "otherwise every epoch sees the same batches in the same order")
        same_rows = {frozenset(b) for b in batches} == {frozenset(b) for b in other}
        expect(not same_rows,
               "a different seed only reorders the same batches: the same rows meet in every "
               "epoch. Shuffle the rows BEFORE sorting, and sort within mega-batches of "
               "50 x batch_size, not the whole data set at once")
        pairs_0 = {frozenset(p) for b in batches for p in itertools.combinations(b, 2)}
        pairs_1 = {frozenset(p) for b in other for p in itertools.combinations(b, 2)}
        recurring = len(pairs_0 & pairs_1) / max(1, len(pairs_0))
        expect(recurring < 0.25,
               f"{recurring:.0%} of the row pairs that share a batch share one again with another "
               "seed: batches barely change between epochs. Sort within mega-batches of "
               "50 x batch_size drawn at random, not the whole data set at once")
        widths = [max(lengths[i] for i in b) for b in batches]
        expect(any(b > a for a, b in zip(widths, widths[1:])),
               "the batches run from longest to shortest over the whole epoch: training would see "
               "all the long pairs first. Shuffle the batch order, or keep the mega-batches in "
               "random order (each longest first)")

    return check("length_grouped_batches", test)


# ----------------------------------------------------------------------------------------------
def check_accumulate_gradients(fn: Callable) -> bool:
    """Exercise: accumulate_gradients(model, micro_batches) leaves in .grad the gradient of the
    mean loss over ALL pairs, as one big batch would."""

    def test() -> None:
        from rmcourse.losses import pairwise_loss

        model, rows, collate = _tiny()
        model.eval()  # dropout is off anyway; eval mode makes that explicit
        sizes = (3, 3, 2)
        micro, start = [], 0
        for size in sizes:
            micro.append(collate(rows[start:start + size]))
            start += size
        model.zero_grad(set_to_none=True)
        big = collate(rows[:start])
        rewards = model(**big)
        pairwise_loss(rewards[:start], rewards[start:]).backward()
        want = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        fn(model, micro)
        got = {n: p.grad for n, p in model.named_parameters()}
        missing = [n for n in want if got.get(n) is None]
        if missing:
            raise AssertionError(f"no gradient on {missing[0]}: call loss.backward() for every "
                                 "micro-batch")
        # Relative to the largest gradient anywhere: some entries are ~0 in theory (e.g. key
        # biases, which softmax ignores) and differ only by float32 noise from the padding.
        scale = max(float(w.abs().max()) for w in want.values())
        worst = max(float((got[n] - w).abs().max()) for n, w in want.items()) / scale
        if worst > 1e-2:
            dot = sum(float((got[n] * w).sum()) for n, w in want.items())
            size = dot / sum(float((w * w).sum()) for w in want.values())
            if size > 1.5:
                raise AssertionError(f"gradients are about {size:.1f}x too large: scale each "
                                     "micro-batch's mean loss by its share of the pairs "
                                     f"(b / {start}) before backward")
            raise AssertionError(
                f"accumulated gradients differ from the big batch's (relative error {worst:.2g}). "
                f"With micro-batches of {list(sizes)} pairs, weight each mean loss by b / {start} "
                f"(not 1 / {len(sizes)}) so every pair counts the same, and do not zero the "
                "gradients between micro-batches")
        model.zero_grad(set_to_none=True)

    return check("accumulate_gradients", test)


# ----------------------------------------------------------------------------------------------
# (n_shared, n_chosen, n_rejected, width): a shared prompt first (so that "n_shared - 1" and
# "n_shared + 1" name real positions), tails of one token, no shared token, width == real tokens
# and width > real tokens
_PAIR_SHAPES = ((4, 3, 2, 11), (3, 1, 1, 5), (2, 1, 2, 8), (0, 2, 3, 5), (0, 1, 1, 4), (5, 2, 1, 8))
_SEGMENTS = ("shared prompt", "chosen tail", "rejected tail", "padding")


def _pair_mask(mask: Any, call: str, width: int) -> torch.Tensor:
    """The learner's mask as a bool [width, width] tensor; 0/1 integer or float masks are converted
    (the exercise allows them), an additive 0 / -inf mask is refused by name."""
    try:
        mask = torch.as_tensor(mask)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError(f"{call}: the mask must be a tensor, got {type(mask).__name__}") from None
    if mask.dtype == torch.bool:
        return mask
    expect(not mask.is_complex(), f"{call}: the mask must be bool (True = may attend), got {mask.dtype}")
    values = mask.detach().double()
    if bool(((values == 0) | (values == 1)).all()):
        return values != 0
    if mask.is_floating_point() and bool(((values == 0) | (values < -1e4)).all()):
        raise AssertionError(
            f"{call}: your mask holds 0 and -inf (or the dtype's minimum): that is the additive form "
            "that eager attention adds to its scores. Return the bool form, True where token i may "
            "attend to token j (SDPA takes it as given; pack_pairs passes it on)")
    shown = sorted(set(values.flatten().tolist()))[:4]
    raise AssertionError(f"{call}: the mask must hold True/False (or 1/0), got values {shown}")


def _pair_positions(positions: Any, call: str) -> torch.Tensor:
    try:
        positions = torch.as_tensor(positions)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError(f"{call}: the positions must be a tensor, got "
                             f"{type(positions).__name__}") from None
    expect(not (positions.is_floating_point() or positions.is_complex()
                or positions.dtype == torch.bool),
           f"{call}: positions are {positions.dtype}, but position ids are indices, which "
           "transformers takes as a LongTensor: return integers (torch.long)")
    return positions


def _pair_verdict(out: Any, n_shared: int, n_chosen: int, n_rejected: int, width: int) -> None:
    """AssertionError naming the first mistake in the learner's (mask, positions) of one row."""
    from rmcourse.prefix_sharing import pair_mask_and_positions

    call = f"pair_mask_and_positions({n_shared}, {n_chosen}, {n_rejected}, {width})"
    expect(out is not None, f"{call} returned None: did you forget `return`?")
    expect(isinstance(out, (tuple, list)) and len(out) == 2,
           f"{call} must return a pair (mask, positions), got {type(out).__name__}")
    if all(hasattr(x, "dim") for x in out) and out[0].dim() == 1 and out[1].dim() == 2:
        raise AssertionError(f"{call} returned (positions, mask): return (mask, positions)")
    real = n_shared + n_chosen + n_rejected
    mask = _pair_mask(out[0], call, width)
    positions = _pair_positions(out[1], call)
    if tuple(mask.shape) == (real, real) and real != width:
        raise AssertionError(f"{call}: the mask is [{real}, {real}], the real tokens only; it must "
                             f"cover the whole row, padding included: [width, width] = [{width}, {width}]")
    expect(tuple(mask.shape) == (width, width),
           f"{call}: the mask must be [width, width] = [{width}, {width}] (one row; pack_pairs adds "
           f"the batch and head dimensions), got {list(mask.shape)}")
    expect(tuple(positions.shape) == (width,),
           f"{call}: positions must have shape [width] = [{width}], got {list(positions.shape)}")
    want_mask, want_pos = pair_mask_and_positions(n_shared, n_chosen, n_rejected, width)
    segment = [0] * n_shared + [1] * n_chosen + [2] * n_rejected + [3] * (width - real)

    def name(i: int) -> str:
        return f"token {i} ({_SEGMENTS[segment[i]]})"

    def first(block: torch.Tensor) -> tuple[int, int]:
        i, j = block.nonzero()[0].tolist()
        return i, j

    got, want = mask[:real, :real], want_mask[:real, :real]
    if not torch.equal(got, want):
        if torch.equal(got, want.T):
            raise AssertionError(f"{call}: your mask is transposed. mask[i, j] says whether token i "
                                 "(the row) may attend to token j (the column); yours lets each "
                                 "token attend to the tokens AFTER it")
        later = got & ~torch.ones(real, real, dtype=torch.bool).tril()
        if later.any():
            i, j = first(later)
            raise AssertionError(
                f"{call}: {name(i)} attends to {name(j)}, which comes after it: the mask is not "
                "causal. A decoder token sees only itself and the tokens before it, as in its "
                "unpacked row; a later token changes its hidden state and the rewards")
    pad_cols = mask[:real, real:]
    if pad_cols.any():
        i, j = first(pad_cols)
        raise AssertionError(
            f"{call}: {name(i)} attends to padding position {real + j}: a real token must never "
            "see padding, or its hidden state (and the reward) would depend on the padding ids and "
            "on how wide the batch happens to be")
    missing_self = [i for i in range(real) if not bool(mask[i, i])]
    if missing_self:
        raise AssertionError(
            f"{call}: {name(missing_self[0])} does not attend to itself: mask[i, i] must be True "
            "for every real token (with j < i only, the first token would attend to nothing)")
    s, c = n_shared, n_shared + n_chosen
    leak = mask[c:real, s:c]
    if leak.any():
        i, j = first(leak)
        raise AssertionError(
            f"{call}: {name(c + i)} attends to {name(s + j)}: the rejected tail sees the chosen "
            "tail. That is the leak the mask must block: the rejected reward would depend on the "
            "chosen answer, which the rejected row alone never contains, so the packed rewards "
            "would differ from the two unpacked forwards")
    tril = torch.ones(real, real, dtype=torch.bool).tril()
    prompt = tril[:s, :s] & ~mask[:s, :s]
    if prompt.any():
        i, j = first(prompt)
        raise AssertionError(
            f"{call}: {name(i)} does not attend to {name(j)}: the shared prompt's own block must be "
            "causal (each prompt token sees every prompt token up to itself), as in both unpacked rows")
    for start, stop in ((s, c), (c, real)):
        unseen = ~mask[start:stop, :s]
        if unseen.any():
            i, j = first(unseen)
            raise AssertionError(
                f"{call}: {name(start + i)} does not attend to {name(j)}: a tail must see the whole "
                "shared prompt, as in its own row, or its reward is computed without (part of) "
                "the prompt it answers")
        own = tril[start:stop, start:stop] & ~mask[start:stop, start:stop]
        if own.any():
            i, j = first(own)
            raise AssertionError(
                f"{call}: {name(start + i)} does not attend to {name(start + j)}: each tail must "
                "see its own earlier tokens (a causal block), as in its own row")
    assert torch.equal(mask[:real, :real], want), "internal: a wrong real block was not named"
    empty = [i for i in range(real, width) if not bool(mask[i].any())]
    if empty:
        raise AssertionError(
            f"{call}: padding row {empty[0]} attends to nothing: its softmax runs over no keys "
            "(0/0). With -inf scores (a plain softmax, eager attention given a -inf mask) that row "
            "is NaN, and the NaN spreads although no reward reads it: in the next layer a real "
            "token's zero weight on it gives 0 x NaN = NaN, and in the backward 0 x NaN poisons the "
            "weight gradients. Let each padding token attend at least to itself")
    got_p, want_p = positions[:real].long(), want_pos[:real]
    if torch.equal(got_p, want_p):
        return
    if torch.equal(got_p, want_p + 1):
        raise AssertionError(
            f"{call}: your positions start at 1. Position ids count from 0, as in an unpacked row "
            "(transformers' default is arange(L)); a rotary model like Llama happens not to notice "
            "a shift of every position, but one with learned absolute position embeddings (GPT-2) "
            "would read every token one position off")
    expect(torch.equal(got_p[:c], want_p[:c]),
           f"{call}: the shared prompt and the chosen tail are one unpacked row: positions "
           f"{want_p[:c].tolist()}, got {got_p[:c].tolist()}")
    rejected = got_p[c:].tolist()
    for start, why in (
            (c, f"continue after the chosen tail, at n_shared + n_chosen = {c}. In its own row the "
                f"rejected answer starts right after the prompt, at n_shared = {s}; continuing puts "
                f"it {n_chosen} positions further from the prompt, as if the chosen answer stood in "
                "between, so its position embeddings (rotary in Llama) and its reward change"),
            (s - 1, f"restart at n_shared - 1 = {s - 1}, one too early: the first rejected token "
                    "takes the position of the last prompt token. Restart at n_shared, the position "
                    "right after the prompt"),
            (s + 1, f"restart at n_shared + 1 = {s + 1}, one too late: a position is skipped, as "
                    "if a token stood between the prompt and the rejected answer. Restart at "
                    "n_shared")):
        if rejected == list(range(start, start + n_rejected)):
            raise AssertionError(f"{call}: the rejected tail's positions {rejected} {why}")
    raise AssertionError(f"{call}: the rejected tail's positions must restart at n_shared: "
                         f"{want_p[c:].tolist()}, got {rejected}")


def check_pair_mask_and_positions(fn: Callable) -> bool:
    """Exercise: pair_mask_and_positions(n_shared, n_chosen, n_rejected, width) -> (mask bool
    [W, W], positions long [W]) of one prefix-shared row [prompt | chosen | rejected | padding].

    Accepts 0/1 integer or float masks (converted), any padding-row content that attends at least
    one key without a real row attending padding, and any positions on padding.
    """

    def test() -> None:
        for shape in _PAIR_SHAPES:
            _pair_verdict(fn(*shape), *shape)

    return check("pair_mask_and_positions", test)
