"""Pooling picks the first/last REAL token from the attention mask, whatever the padding side."""
import pytest
import torch

from rmcourse.pooling import first_token_index, first_token_pool, last_token_index, last_token_pool

# Three sequences of real lengths 3, 5, 1 in a batch of width 5.
LENGTHS = [3, 5, 1]
WIDTH = 5


def _batch(side: str):
    """hidden[b, t] = the vector (value, value) where value identifies the REAL token k of row b
    as 10*b + k; pads hold -1, so pooling a pad is visible."""
    hidden = torch.full((len(LENGTHS), WIDTH, 2), -1.0)
    mask = torch.zeros(len(LENGTHS), WIDTH, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        start = 0 if side == "right" else WIDTH - n
        for k in range(n):
            hidden[b, start + k] = 10 * b + k
        mask[b, start : start + n] = 1
    return hidden, mask


@pytest.mark.parametrize("side", ["right", "left"])
def test_first_token_is_the_first_real_token(side):
    hidden, mask = _batch(side)
    pooled = first_token_pool(hidden, mask)
    assert pooled.shape == (3, 2)
    assert pooled[:, 0].tolist() == [0.0, 10.0, 20.0]


@pytest.mark.parametrize("side", ["right", "left"])
def test_last_token_is_the_last_real_token(side):
    hidden, mask = _batch(side)
    pooled = last_token_pool(hidden, mask)
    assert pooled[:, 0].tolist() == [2.0, 14.0, 20.0]


def test_same_vectors_under_both_padding_sides():
    right = last_token_pool(*_batch("right"))
    left = last_token_pool(*_batch("left"))
    assert torch.equal(right, left)
    assert torch.equal(first_token_pool(*_batch("right")), first_token_pool(*_batch("left")))


def test_indices():
    _, mask = _batch("left")
    assert last_token_index(mask).tolist() == [4, 4, 4]
    assert first_token_index(mask).tolist() == [2, 0, 4]
    _, mask = _batch("right")
    assert last_token_index(mask).tolist() == [2, 4, 0]
    assert first_token_index(mask).tolist() == [0, 0, 0]


def test_mask_not_pad_id_decides():
    # A "pad-looking" real token (eos == pad) still counts when the mask says it is real.
    hidden = torch.arange(4, dtype=torch.float32).view(1, 4, 1)
    mask = torch.tensor([[1, 1, 1, 0]])
    assert last_token_pool(hidden, mask).item() == 2.0


def test_gradient_flows_to_the_pooled_position():
    hidden, mask = _batch("left")
    hidden.requires_grad_(True)
    last_token_pool(hidden, mask).sum().backward()
    assert hidden.grad[:, -1].abs().sum() > 0
    assert hidden.grad[:, :-1].abs().sum() == 0


@pytest.mark.parametrize(
    "hidden, mask, err, msg",
    [
        (torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.long), ValueError, "3-D"),
        (torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.long), ValueError, "attention_mask"),
        (torch.zeros(2, 3, 4), torch.ones(3, dtype=torch.long), ValueError, "2-D"),
        (torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [0, 0, 0]]), ValueError, "no real token in row 1"),
        (torch.zeros(1, 3, 4), torch.tensor([[1, 2, 0]]), ValueError, "only 0 and 1"),
        ([[0.0]], torch.ones(1, 1, dtype=torch.long), TypeError, "hidden"),
        (torch.zeros(1, 1, 1), [[1]], TypeError, "attention_mask"),
    ],
)
def test_bad_inputs(hidden, mask, err, msg):
    for fn in (first_token_pool, last_token_pool):
        with pytest.raises(err, match=msg):
            fn(hidden, mask)
