"""What every chapter's exercise notebook shares: `needs_exercise`, so Run All gets through a
notebook whose exercises are not solved yet.

A cell that uses a function the learner writes runs its body inside `with needs_exercise(N):`.
While exercise N still raises NotImplementedError the cell prints one "⏳ solve exercise N first"
line instead of a traceback, and Run All goes on. A later cell that only uses what such a cell
computed (a variable it never got to define) is wrapped the same way, naming the exercise it
waits for: its NameError becomes the same line, but only while exercise N is known to be
unsolved in this kernel, so a genuine NameError elsewhere still shows.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["needs_exercise"]

# exercises whose function raised NotImplementedError inside `needs_exercise` in this kernel and
# have not run through it since
_UNSOLVED: set[int] = set()


@contextlib.contextmanager
def needs_exercise(number: int) -> Iterator[None]:
    """Run a cell's body; if it reaches an exercise still raising NotImplementedError, say which
    exercise to solve first instead of stopping Run All with a traceback. A NameError is treated
    the same way while exercise `number` is unsolved: the cell uses a result that the exercise's
    earlier cell could not compute."""
    try:
        yield
    except NotImplementedError:
        _UNSOLVED.add(number)
        print(f"⏳ solve exercise {number} first: this cell uses the function you write there.")
    except NameError:
        if number not in _UNSOLVED:
            raise
        print(f"⏳ solve exercise {number} first: this cell uses results of the function you "
              "write there.")
    else:
        _UNSOLVED.discard(number)
