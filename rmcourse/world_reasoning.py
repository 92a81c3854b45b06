"""Reasoning prompts of the preference world: arithmetic and word problems with worked steps.

A reasoning prompt carries its right ``answer``, a list of ``wrong`` answers people actually give
(carry slips of +-10, off-by-one, undoing a rounding the wrong way, forgetting a step) and three
worked ``steps``. A response shows 0..3 of the steps (its ``detail``), then a final answer, right
or wrong. Checking the answer needs arithmetic, which is legitimately hard for a small encoder.

Novel reasoning (test only, ``novelty == "novel"``): arithmetic on four-digit numbers (train sees
three digits at most) and two word-problem templates (``NOVEL_WORD_PROBLEMS``) that no other split
uses. Their maths is the same kind (multiply, then add or subtract); the surface is new.
"""
from __future__ import annotations

import random
from typing import Callable, Sequence

__all__ = ["MATH_PREFIXES", "MATH_SUFFIXES", "ARITH_TEMPLATES", "ANSWER_FORMS", "WP_ANSWER_FORMS",
           "WORD_PROBLEMS", "NOVEL_WORD_PROBLEMS", "arithmetic", "word_problem"]

NAMES = ("Maya", "Leo", "Aisha", "Tom", "Priya", "Lucas", "Sofia", "Omar", "Emma", "Kenji", "Zara", "Noah",
         "Ines", "Ravi", "Chloe", "Mateo", "Hana", "Sam", "Amara", "Felix", "Nadia", "Ben", "Yara", "Diego",
         "Lena", "Kofi", "Mia", "Arjun", "Elsa", "Jonah")
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "cards", "stamps", "shells", "beads", "coins",
         "books", "balloons", "crayons", "buttons", "cupcakes", "tomatoes", "eggs", "bottles", "postcards",
         "toy cars")
CONTAINERS = (("box", "boxes"), ("bag", "bags"), ("jar", "jars"), ("basket", "baskets"), ("crate", "crates"),
              ("tray", "trays"))
GOODS = ("tickets", "sandwiches", "notebooks", "comics", "plants", "candles")

MATH_PREFIXES = ("", "Quick maths question.", "Help me check my homework.", "Please solve this.",
                 "I'm stuck on this one.", "Can you work this out?", "Here is a problem for you.", "Hi!",
                 "Test question.", "My kid asked me this.")
MATH_SUFFIXES = ("", "Thanks!", "Show your working.", "Please double-check it.", "Just the answer is fine.",
                 "Thank you.")
ARITH_TEMPLATES = ("What is {a} {op} {b}?", "Compute {a} {op} {b}.", "Calculate {a} {op} {b}.",
                   "What do you get for {a} {op} {b}?", "Work out {a} {op} {b}.", "How much is {a} {op} {b}?")
# Final-answer wordings; the last one is held out for test (``rmcourse.world_text.wordings``).
ANSWER_FORMS = ("The answer is {v}.", "So the result is {v}.", "That gives {v}.", "The final answer is {v}.",
                "This comes out to {v}.")
WP_ANSWER_FORMS = ("The answer is {v} {u}.", "So that makes {v} {u}.", "In total that is {v} {u}.",
                   "The final answer is {v} {u}.", "That comes to {v} {u}.")

Task = dict  # {"answer": int, "wrong": list[int], "steps": (str, str, str), "unit": str}


def _wrong_numbers(answer: int, candidates: Sequence[int]) -> list[int]:
    out = sorted({c for c in candidates if c != answer and c >= 0})
    return out or [answer + 10]


def _task(answer: int, wrong: Sequence[int], steps: tuple[str, str, str], unit: str) -> Task:
    return {"answer": answer, "wrong": _wrong_numbers(answer, wrong), "steps": steps, "unit": unit}


def arithmetic(rng: random.Random, novel: bool = False) -> tuple[str, Task]:
    """``a op b`` with op in +, -, *; ``novel`` uses a four-digit ``a`` (three digits for *)."""
    op = rng.choice(["+", "-", "*"])
    if op == "*":
        a = rng.randint(100, 999) if novel else rng.randint(12, 99)
        b = rng.choice([v for v in range(11, 50) if v % 10])
        bt, bo = b - b % 10, b % 10
        ans = a * b
        steps = (f"Split {b} into {bt} and {bo}.", f"{a} * {bt} = {a * bt}.", f"{a} * {bo} = {a * bo}.")
        wrong = [ans + a, ans - a, ans + 10, ans - 10, a * bt + bo, ans + 100]
    else:
        a = rng.randint(1000, 9999) if novel else rng.randint(120, 999)
        b = rng.choice([v for v in range(11, 99) if v % 10])  # a > b, never a multiple of 10
        br = int(round(b / 10.0)) * 10
        ans = a + b if op == "+" else a - b
        part = a + br if op == "+" else a - br
        undo_add = (br < b) if op == "+" else (br > b)
        steps = (f"Round {b} to {br} to make it easier.", f"{a} {op} {br} = {part}.",
                 f"Then {'add' if undo_add else 'subtract'} {abs(br - b)} to undo the rounding.")
        wrong = [ans + 10, ans - 10, ans + 1, ans - 1, part + (part - ans), ans + 100]
    word = {"+": "plus", "-": "minus", "*": "times"}[op]
    body = rng.choice(ARITH_TEMPLATES).format(a=a, op=rng.choice([op, word]), b=b)
    return body, _task(ans, wrong, steps, "")


# --- word problems: each template draws its numbers and returns (text, task) -----------------

def _packs(rng: random.Random, name: str, items: str) -> tuple[str, Task]:
    a, b, c = rng.randint(3, 40), rng.randint(2, 9), rng.randint(2, 12)
    text = f"{name} has {a} {items}. {name} buys {b} packs of {c} {items}. How many {items} does {name} have now?"
    ans = a + b * c
    steps = (f"There are {b} packs with {c} {items} in each.", f"{b} packs of {c} make {b * c} {items}.",
             f"We add the {a} {items} {name} already had.")
    return text, _task(ans, [a + b + c, (a + b) * c, b * c, ans + c, ans - 1], steps, items)


def _gifts(rng: random.Random, name: str, items: str) -> tuple[str, Task]:
    b, c = rng.randint(2, 9), rng.randint(2, 8)
    a = b * c + rng.randint(1, 40)
    text = f"{name} has {a} {items} and gives {b} to each of {c} friends. How many {items} are left?"
    ans = a - b * c
    steps = (f"{name} gives away {b} {items} {c} times.", f"That is {b * c} {items} in total.",
             f"We subtract that from {a}.")
    return text, _task(ans, [a - b - c, a - b, b * c, ans + b, ans - c], steps, items)


def _containers(rng: random.Random, name: str, items: str) -> tuple[str, Task]:
    (box, boxes), a, b = rng.choice(CONTAINERS), rng.randint(4, 15), rng.randint(2, 9)
    c = rng.randint(1, a * b - 1)
    text = (f"A {box} holds {a} {items}. {name} fills {b} {boxes} and then takes out {c} {items}. "
            f"How many {items} are in the {boxes} now?")
    ans = a * b - c
    steps = (f"{b} full {boxes} hold {b} times {a} {items}.", f"That is {a * b} {items}.",
             f"Then we take away the {c} that were removed.")
    return text, _task(ans, [a + b - c, a * b + c, a * (b - 1) - c, ans + 10, ans - 1], steps, items)


def _pages(rng: random.Random, name: str, items: str) -> tuple[str, Task]:
    a, b, c = rng.randint(5, 40), rng.randint(2, 14), rng.randint(3, 60)
    text = (f"{name} reads {a} pages a day for {b} days and then {c} more pages on Sunday. "
            f"How many pages does {name} read in total?")
    ans = a * b + c
    steps = (f"{name} reads {a} pages on each of {b} days.", f"That is {a * b} pages.",
             f"We add the {c} pages from Sunday.")
    return text, _task(ans, [a + b + c, a * (b + c), a * b, ans + 10, ans - a], steps, "pages")


def _change(rng: random.Random, name: str, items: str) -> tuple[str, Task]:
    goods = rng.choice(GOODS)
    a, b = rng.randint(2, 15), rng.randint(2, 6)
    note = next(n for n in (20, 50, 100, 200) if n > a * b)
    text = (f"{goods.capitalize()} cost {a} dollars each. {name} buys {b} {goods} and pays with a "
            f"{note}-dollar note. How much change does {name} get?")
    ans = note - a * b
    steps = (f"{b} {goods} at {a} dollars each cost {b} times {a} dollars.", f"That is {a * b} dollars.",
             f"We subtract that from the {note} dollars paid.")
    return text, _task(ans, [note - a - b, a * b, note - a, ans + 10, ans - a], steps, "dollars")


def _share(rng: random.Random, name: str, items: str) -> tuple[str, Task]:
    a, b = rng.randint(2, 15), rng.randint(2, 9)
    total = a * b
    text = f"{name} shares {total} {items} equally among {b} friends. How many {items} does each friend get?"
    steps = (f"We split {total} {items} into {b} equal groups.", f"That is {total} divided by {b}.",
             f"Check: {b} times the answer must give {total}.")
    return text, _task(a, [a + 1, a - 1, total - b, b, a + b], steps, items)


def _seats(rng: random.Random, name: str, items: str) -> tuple[str, Task]:
    a, b = rng.randint(5, 20), rng.randint(2, 6)
    c = rng.randint(1, a * b - 1)
    text = (f"{name} counts {a} rows of {b} seats on a bus, and {c} of the seats are empty. "
            f"How many seats are taken?")
    ans = a * b - c
    steps = (f"The bus has {a} rows with {b} seats in each.", f"That is {a * b} seats.",
             f"We take away the {c} empty seats.")
    return text, _task(ans, [a * b + c, a + b - c, a * b, ans + 10, ans - 1], steps, "seats")


def _savings(rng: random.Random, name: str, items: str) -> tuple[str, Task]:
    a, b = rng.randint(3, 25), rng.randint(2, 12)
    c = rng.randint(1, a * b - 1)
    text = (f"{name} saves {a} dollars every week for {b} weeks and then spends {c} dollars on a gift. "
            f"How many dollars does {name} have left?")
    ans = a * b - c
    steps = (f"{name} puts away {a} dollars in each of {b} weeks.", f"That is {a * b} dollars.",
             f"We subtract the {c} dollars spent on the gift.")
    return text, _task(ans, [a * b + c, a + b - c, a * b, ans + 10, ans - a], steps, "dollars")


WordProblem = Callable[[random.Random, str, str], tuple[str, Task]]
WORD_PROBLEMS: tuple[WordProblem, ...] = (_packs, _gifts, _containers, _pages, _change, _share)
NOVEL_WORD_PROBLEMS: tuple[WordProblem, ...] = (_seats, _savings)  # test only


def word_problem(rng: random.Random, novel: bool = False) -> tuple[str, Task]:
    """A word problem from ``WORD_PROBLEMS`` (or, when ``novel``, from ``NOVEL_WORD_PROBLEMS``)."""
    name, items = rng.choice(NAMES), rng.choice(ITEMS)
    template = rng.choice(NOVEL_WORD_PROBLEMS if novel else WORD_PROBLEMS)
    return template(rng, name, items)
