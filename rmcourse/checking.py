"""Feedback for exercises: tell the learner what is wrong, not just 'assert failed'."""
from __future__ import annotations

import math
import traceback
from typing import Any, Callable


def expect(condition: bool, message: str) -> None:
    """Raise AssertionError(message) when `condition` is false; `message` says what to fix."""
    if not condition:
        raise AssertionError(message)


def check(name: str, test: Callable[[], None]) -> bool:
    """Run one exercise test and print a one-line verdict the learner can act on.

    ✅ passed; ⏳ the exercise still raises NotImplementedError; ❌ with the failed expectation's
    message, or the error type and the line of the learner's code that raised it.
    """
    try:
        test()
    except NotImplementedError:
        print(f"⏳ {name}: not implemented yet — replace the `raise NotImplementedError` line.")
        return False
    except AssertionError as err:
        print(f"❌ {name}: {err}")
        return False
    except Exception as err:  # a crash in learner code: show where, briefly
        frame = traceback.extract_tb(err.__traceback__)[-1]
        print(f"❌ {name}: {type(err).__name__}: {err} (line {frame.lineno}: {frame.line})")
        return False
    print(f"✅ {name}")
    return True


def as_number(value: Any, what: str) -> float:
    """A learner's return value as one finite float, or an AssertionError saying what it was."""
    expect(value is not None, f"{what} returned None: did you forget `return`?")
    if hasattr(value, "numel") and hasattr(value, "item"):  # a torch tensor
        expect(value.numel() == 1, f"{what} returned a tensor of shape {tuple(value.shape)}, "
                                   "expected one number")
        value = value.item()
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} returned {type(value).__name__}, expected a number") from None
    expect(math.isfinite(out), f"{what} returned {out}, expected a finite number")
    return out


def as_tensor(value: Any, what: str, shape: tuple) -> "torch.Tensor":
    """A learner's return value checked to be a torch.Tensor of `shape` (returned unchanged, so
    gradients can still be checked), or an AssertionError saying what it was."""
    import torch

    expect(value is not None, f"{what} returned None: did you forget `return`?")
    expect(isinstance(value, torch.Tensor), f"{what} returned {type(value).__name__}, expected a "
                                            "torch.Tensor")
    expect(tuple(value.shape) == shape, f"{what} returned shape {tuple(value.shape)}, expected "
                                        f"{shape}")
    return value
