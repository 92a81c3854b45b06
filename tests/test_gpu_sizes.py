"""Every `scaled(cpu, gpu)` size that shapes DATA is built at its GPU size here, on a CPU.

A GPU run picks the second value of each `rmcourse.device.scaled(cpu, gpu)`; nothing else
differs. So the data-size crashes a GPU run would hit (a pool too small for rejection sampling,
a split that cannot supply enough pairs, fewer batches than a loop takes) can be caught without a
GPU: read each GPU value from the notebook's source, build that data, check what the notebook
then does with it. Sizes that only change how long something runs (bootstrap resamples, batch
sizes for scoring, validation cadence) are listed in RUN_SIZES with the reason.

`test_every_scaled_call_is_covered` fails when a notebook, solution or module gains a `scaled`
call this file does not know: build it below or list it in RUN_SIZES.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import numpy as np
import pytest

import rmcourse.device

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb")) \
    + sorted((ROOT / "rmcourse").rglob("*.py"))

# (file stem, name) -> why the GPU value builds no data (it only changes a run's length or cost).
# A name ending in "*" matches every inline call that starts with the rest.
RUN_SIZES = {
    ("01_bradley_terry", "N_BOOT"): "bootstrap resamples: more fits of the same battles",
    ("01_bradley_terry", "range(scaled(*"): "repeats of a simulation",
    ("02_preference_data", "PAIRS_PER_BATCH"): "pairs per timed batch; checked below to fit the rows",
    ("02_preference_data", "range(0, scaled(*"): "rows timed; checked below to fit the validation rows",
    ("04_training_fast", "SEED_STYLE_STEPS"): "timed steps of the 512 rung; checked below against the plan",
    ("04_training_fast", "BATCH"): "pairs per step; the plan is built below",
    ("05_evaluation", "BATCH"): "scoring batch size",
    ("course_models", "lr"): "learning rate of the recipe, not data",
    ("course_models", "batch_size"): "training batch size; steps checked below",
    ("course_models", "eval_every"): "validation cadence; checked below against the steps",
    ("course_models", "eval_batch_size"): "scoring batch size",
    ("course_models", "frozen_layers"): "how many layers train, not data",
    ("07_judges_and_generative_rms", "N_GEN"): "judgements generated, on the first test pairs already built",
    ("07b_verifiers_and_critiques", "CRITIQUE_TOKENS"): "new tokens per generated critique, not data",
    ("08b_dpo_implicit_reward", "TRAINABLE"): "how many decoder blocks train, not data",
    ("08b_dpo_implicit_reward", "fit_floor"): "an assert's threshold on training accuracy, not data",
    ("09_policy_against_a_reward_model", "POOL"): "answers sampled per prompt for best-of-n; the n values "
                                                  "printed are filtered to n <= POOL in the notebook",
    ("09_policy_against_a_reward_model", "STEPS"): "RL steps on the same prompts",
    ("09_policy_against_a_reward_model", "rounds"): "rejection-sampling rounds on the same prompts",
    ("09b_reward_hacking_mitigations", "N_SEEDS"): "RL seeds per configuration: more runs of the same setup",
    ("09b_reward_hacking_mitigations", "N_EVAL"): "held-out prompts for the exact statistics; world.prompts "
                                                   "draws any number, after the same 256 RL prompts",
}
# (file stem, name) -> the test that builds it at its GPU size
BUILT = {
    ("01_bradley_terry", "N_BATTLES"): "test_ch01_battles",
    ("01_bradley_terry", "simulate_battles_from_matrix(*"): "test_ch01_battles",
    ("02_preference_data", "N_TRAIN"): "test_ch02_splits",
    ("02_preference_data", "N_TEST"): "test_ch02_splits",
    ("02_preference_data", 'world.pairs("validation", scaled(*'): "test_ch02_splits",
    ("course_models", "n_train"): "test_ch03_course_recipe",
    ("course_models", "n_val"): "test_ch03_course_recipe",
    ("course_models", "n_test"): "test_ch03_course_recipe",
    ("04_training_fast", "POOL"): "test_ch04_ladder_data",
    ("05_evaluation", "N_TEST"): "test_ch05_data",
    ("05_evaluation", "N_VAL"): "test_ch05_data",
    ("05_evaluation", "N_RANK"): "test_ch05_data",
    ("06_stability", "N_TRAIN"): "test_ch06_data",
    ("06_stability", "N_VAL"): "test_ch06_data",
    ("06_stability", "N_TEST"): "test_ch06_data",
    ("06_stability", "N_RANK"): "test_ch06_data",
    ("06_stability", "N_POOL"): "test_ch06_best_of_n_pools",
    **{("07_judges_and_generative_rms", name): "test_ch07_data" for name in (
        "N_TRAIN", "N_TEST", "N_JUDGE", "N_POS", 'world.pairs("validation", scaled(*')},
    **{("07a_self_rewarding", name): "test_ch07a_data" for name in ("N_TEST", "N_POOLS", "N_SIM")},
    **{("07b_verifiers_and_critiques", name): "test_ch07b_data" for name in (
        "N_TRAIN", "N_TEST", "N_GENRM", "N_BON", "N_CLOUD_TRAIN", "N_CLOUD_TEST", "N_CLOUD_BIG", "N_BIG_TRAIN",
        'world.pairs("validation", scaled(*')},
    **{("08_beyond_one_scalar", name): "test_ch08_data" for name in (
        "N_TRAIN", "N_TEST", "N_POOL", "N_PROBLEMS", "N_TEST_PROBLEMS")},
    ("08_beyond_one_scalar", "N_BENCH"): "test_ch08_rb2_bench",
    ("08b_dpo_implicit_reward", "N_DPO_TRAIN"): "test_ch08b_data",
    ("08b_dpo_implicit_reward", "N_DPO_EVAL"): "test_ch08b_data",
    ("08b_dpo_implicit_reward", "N_DRAWS"): "test_ch08b_data",
}


def _registered(stem: str, name: str) -> bool:
    for registry in (BUILT, RUN_SIZES):
        for key_stem, key in registry:
            if key_stem == stem and (key == name or (key.endswith("*") and name.startswith(key[:-1]))):
                return True
    return False


def _inline(stem: str, prefix: str):
    """(cpu, gpu) of the one inline `scaled` call whose receiving call starts with `prefix`."""
    found = [v for k, v in scaled_sites(ROOT / "notebooks" / f"{stem}.ipynb").items() if k.startswith(prefix)]
    assert len(found) == 1, f"{stem}: expected one inline scaled() in a call starting {prefix!r}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------- reading the sources
def _code(path: Path) -> list[str]:
    if path.suffix == ".py":
        return [path.read_text(encoding="utf-8")]
    nb = nbformat.read(path, as_version=4)
    # IPython magics and shell escapes are not Python
    return ["\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            for c in nb.cells if c.cell_type == "code"]


def _is_scaled(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "scaled"


def scaled_sites(path: Path) -> dict[str, tuple[object, object]]:
    """name -> (cpu value, gpu value) for every `scaled(cpu, gpu)` call in a file.

    The name is the variable (or keyword argument) it is assigned to; an inline call is named
    by the source of the call that receives it, e.g. 'world.pairs("validation", scaled(64, 256))'.
    """
    sites: dict[str, tuple[object, object]] = {}
    for source in _code(path):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        named: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                targets = node.targets[0]
                names = [t.id for t in (targets.elts if isinstance(targets, ast.Tuple) else [targets])
                         if isinstance(t, ast.Name)]
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                for name, value in zip(names, values):
                    if _is_scaled(value):
                        sites[name] = _values(value)
                        named.add(id(value))
            elif isinstance(node, ast.keyword) and _is_scaled(node.value):
                sites[node.arg] = _values(node.value)
                named.add(id(node.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and not _is_scaled(node):
                for arg in node.args:
                    if _is_scaled(arg) and id(arg) not in named:
                        sites[ast.get_source_segment(source, node)] = _values(arg)
                        named.add(id(arg))
    return sites


def _values(call: ast.Call) -> tuple[object, object]:
    return ast.literal_eval(call.args[0]), ast.literal_eval(call.args[1])


def gpu(stem: str, name: str):
    """The GPU value of `name` in notebook `stem` (read from notebooks/, where the chapter lives)."""
    path = ROOT / "notebooks" / f"{stem}.ipynb"
    sites = scaled_sites(path)
    assert name in sites, f"{path.name} no longer has `{name} = scaled(...)`: update {Path(__file__).name}"
    return sites[name][1]


@pytest.fixture
def on_gpu(monkeypatch):
    """`rmcourse.device.scaled` returns its GPU value (CUDA or not)."""
    monkeypatch.setattr(rmcourse.device, "on_gpu", lambda: True)


# ---------------------------------------------------------------- the guard
def test_every_scaled_call_is_covered():
    unknown = []
    for path in SOURCES:
        if path.name == "device.py":
            continue  # where scaled is defined
        for name in scaled_sites(path):
            if not _registered(path.stem, name):
                unknown.append(f"{path.relative_to(ROOT)}: {name}")
    assert not unknown, ("scaled() sizes no test builds at GPU size; build them in "
                         f"tests/{Path(__file__).name} or list them in RUN_SIZES: {unknown}")


def test_the_guard_reads_names_and_inline_calls(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nA, K = scaled(1, 2), 3\n"
                                          "f(x, scaled(4, 8))\ncfg = C(size=scaled(5, 6))")]
    path = tmp_path / "07_x.ipynb"
    nbformat.write(nb, path)
    assert scaled_sites(path) == {"A": (1, 2), "f(x, scaled(4, 8))": (4, 8), "size": (5, 6)}


def test_scaled_follows_on_gpu(on_gpu):
    assert rmcourse.device.scaled(1, 2) == 2


# ---------------------------------------------------------------- the builds
def test_ch01_battles():
    from rmcourse.bradley_terry import simulate_battles, simulate_battles_from_matrix
    import pandas as pd

    n = gpu("01_bradley_terry", "N_BATTLES")
    strengths = {"a": 1.4, "b": 1.1, "c": 0.7, "d": 0.45, "e": 0.1, "f": -0.5, "g": -1.2, "h": -2.0}
    assert len(simulate_battles(strengths, n, seed=42)) == n
    rps = pd.DataFrame([[0.5, 0.8, 0.2], [0.2, 0.5, 0.8], [0.8, 0.2, 0.5]],
                       index=list("rsp"), columns=list("rsp"))
    n_rps = _inline("01_bradley_terry", "simulate_battles_from_matrix(")[1]
    assert len(simulate_battles_from_matrix(rps, n_rps, seed=7)) == n_rps


def test_ch02_splits():
    from rmcourse.world import PreferenceWorld

    world = PreferenceWorld(seed=0)
    for split, name in (("train", "N_TRAIN"), ("test", "N_TEST")):
        n = gpu("02_preference_data", name)
        assert len(world.pairs(split, n)) == n
    n_val = _inline("02_preference_data", 'world.pairs("validation", scaled(')[1]
    timed = _inline("02_preference_data", "range(0, scaled(")[1]
    val = world.pairs("validation", n_val)
    assert len(val) >= timed, "the timing cell slices more rows than the validation pairs give"


def test_ch03_course_recipe(on_gpu):
    from rmcourse.course_models import course_recipe, course_splits

    recipe = course_recipe(progress=False)
    assert recipe.n_train > 256, "the patched recipe should be the GPU one"
    splits = course_splits(recipe)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [recipe.n_train, recipe.n_val, recipe.n_test]
    steps = recipe.n_train // recipe.config.batch_size
    assert steps >= 2 * recipe.config.eval_every, "the GPU recipe validates fewer than twice"


def test_ch04_ladder_data():
    from rmcourse.models import load_tokenizer
    from rmcourse.throughput import pad_to_multiple
    from rmcourse.tokenization import PairCollator, length_grouped_batches, tokenize_pairs
    from rmcourse.world import PreferenceWorld

    batch, pool = gpu("04_training_fast", "BATCH"), gpu("04_training_fast", "POOL")
    seed_steps = gpu("04_training_fast", "SEED_STYLE_STEPS")
    tokenizer = load_tokenizer("minilm")
    tokenized, report = tokenize_pairs(PreferenceWorld(seed=0).pairs("train", pool + batch), tokenizer, 128)
    assert len(tokenized) == pool + batch and report.n_dropped == 0
    rows = tokenized.to_list()[batch:]
    lengths = [max(len(r["chosen_input_ids"]), len(r["rejected_input_ids"])) for r in rows]
    plan = length_grouped_batches(lengths, batch, seed=0)
    assert len(plan) >= seed_steps and all(len(b) == batch for b in plan), \
        "the ladder needs full batches (one compiled shape per width) and enough of them"
    collate = PairCollator(tokenizer, 128)
    widths = {pad_to_multiple(collate([rows[i] for i in b]), 64, tokenizer.pad_token_id)["input_ids"].shape
              for b in plan}
    assert len(widths) <= 4, f"the compile rung would compile {len(widths)} shapes: {sorted(widths)}"
    # the SmolLM2 MFU rung takes 9 batches of 16 pairs from the same pool
    assert pool + batch >= 9 * 16


def test_ch05_data():
    from rmcourse.world import PreferenceWorld

    world = PreferenceWorld(seed=0)
    assert len(world.pairs("test", gpu("05_evaluation", "N_TEST"))) == gpu("05_evaluation", "N_TEST")
    assert len(world.pairs("validation", gpu("05_evaluation", "N_VAL"))) == gpu("05_evaluation", "N_VAL")
    rankings = world.rankings(gpu("05_evaluation", "N_RANK"), "test")
    assert len(rankings) == gpu("05_evaluation", "N_RANK")
    assert min(len(r) for r in rankings["responses"]) >= 4


def test_ch06_data():
    from rmcourse.world import PreferenceWorld

    world = PreferenceWorld(seed=0)
    for split, name in (("train", "N_TRAIN"), ("validation", "N_VAL"), ("test", "N_TEST")):
        n = gpu("06_stability", name)
        assert len(world.pairs(split, n)) == n
    n_rank = gpu("06_stability", "N_RANK")
    assert len(world.rankings(n_rank, "train")) == n_rank


def test_ch06_best_of_n_pools():
    """The crash the first GPU reading found: 400 pools of 160 with K = 32 kept after rejection
    sampling at keep rate 0.5 ** fillers leave some prompt short and `rejection_subsample` raises.
    The chapter now draws pools of the same size at every scale (a plain `POOL_SIZE, K = ...`)."""
    from rmcourse.overoptimization import rejection_subsample
    from rmcourse.world import PreferenceWorld

    literals = {}
    for source in _code(ROOT / "notebooks" / "06_stability.ipynb"):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):
                names = [t.id for t in node.targets[0].elts if isinstance(t, ast.Name)]
                if "POOL_SIZE" in names:
                    literals.update(zip(names, ast.literal_eval(node.value)))
    n_pool, pool_size = gpu("06_stability", "N_POOL"), literals["POOL_SIZE"]
    pools = PreferenceWorld(seed=0).candidate_pools(n_pool, pool_size)
    padding = np.asarray(pools["padding"], dtype=float)
    idx = rejection_subsample(padding, 0.5, 32, seed=0)
    assert idx.shape == (n_pool, 32)


def test_ch07_data():
    """Chapter 07 slices its test pairs and draws candidate pools: at GPU size there must be enough."""
    from rmcourse.world import PreferenceWorld

    stem = "07_judges_and_generative_rms"
    g = lambda name: gpu(stem, name)
    world = PreferenceWorld(seed=0)
    assert len(world.pairs("train", g("N_TRAIN"))) == g("N_TRAIN")
    n_val = _inline(stem, 'world.pairs("validation", scaled(')[1]
    assert len(world.pairs("validation", n_val)) == n_val
    test = world.pairs("test", g("N_TEST"))
    assert len(test) >= max(g("N_JUDGE"), g("N_POS"))


def test_ch07a_data():
    """Chapter 07a draws candidate pools and redraws its training pools: at GPU size there must be
    enough, and the 20 small draws of N_POOLS pools (without replacement) must fit in N_SIM."""
    from rmcourse.world import PreferenceWorld

    stem = "07a_self_rewarding"
    g = lambda name: gpu(stem, name)
    code = _code_text(stem)
    world = PreferenceWorld(seed=0)
    assert len(world.pairs("test", g("N_TEST"))) == g("N_TEST")
    assert len(world.candidate_pools(g("N_POOLS"), 4)) == g("N_POOLS")
    assert len(world.candidate_pools(g("N_SIM"), 4)) == g("N_SIM")
    assert "rng_small.choice(N_SIM, N_POOLS, replace=False)" in code, f"{stem} changed how it draws small pools"
    assert g("N_POOLS") <= g("N_SIM")


def _code_text(stem: str) -> str:
    return "\n".join(_code(ROOT / "notebooks" / f"{stem}.ipynb"))


def test_ch07b_data():
    """Chapter 07b selects sections out of its splits and pools: at GPU size there must be enough."""
    from rmcourse.world import PreferenceWorld

    stem = "07b_verifiers_and_critiques"
    g = lambda name: gpu(stem, name)
    code = _code_text(stem)
    world = PreferenceWorld(seed=0)
    assert len(world.pairs("train", g("N_TRAIN"))) == g("N_TRAIN")
    n_val = _inline(stem, 'world.pairs("validation", scaled(')[1]
    assert len(world.pairs("validation", n_val)) == n_val
    test = world.pairs("test", g("N_TEST"))
    sections = list(test["section"])
    assert sections.count("reasoning") >= g("N_GENRM"), "too few reasoning test pairs for GenRM"
    assert sum(s in ("reasoning", "chat_hard") for s in sections) >= g("N_CLOUD_TEST")
    # the pools and splits below are built exactly as the notebook builds them
    assert 'world.pairs("train", 3 * N_CLOUD_TRAIN)' in code, f"{stem} changed how it draws CLoud's training pairs"
    cloud = world.pairs("train", 3 * g("N_CLOUD_TRAIN"))
    assert sum(s in ("reasoning", "chat_hard") for s in cloud["section"]) >= g("N_CLOUD_TRAIN")
    assert "world.candidate_pools(4 * N_BON, 8)" in code, f"{stem} changed how it draws best-of-n pools"
    bon = world.candidate_pools(4 * g("N_BON"), 8)
    assert list(bon["section"]).count("reasoning") >= g("N_BON"), "too few reasoning pools for best-of-n"
    assert 'world.pairs("test", N_TEST + 3 * N_CLOUD_BIG)' in code, f"{stem} changed how it draws CLoud's big test"
    big = world.pairs("test", g("N_TEST") + 3 * g("N_CLOUD_BIG")).select(
        range(g("N_TEST"), g("N_TEST") + 3 * g("N_CLOUD_BIG")))
    assert sum(s in ("reasoning", "chat_hard") for s in big["section"]) >= g("N_CLOUD_BIG")
    # three disjoint training sets after the pairs the first heads trained on
    assert "world.pairs(\"train\", first + 9 * N_BIG_TRAIN)" in code, f"{stem} changed how it draws the big training sets"
    first = 3 * g("N_CLOUD_TRAIN")
    fresh = world.pairs("train", first + 9 * g("N_BIG_TRAIN")).select(range(first, first + 9 * g("N_BIG_TRAIN")))
    assert sum(s in ("reasoning", "chat_hard") for s in fresh["section"]) >= 3 * g("N_BIG_TRAIN")


def test_ch08_data():
    from rmcourse.process import make_problems
    from rmcourse.world import PreferenceWorld

    stem = "08_beyond_one_scalar"
    world = PreferenceWorld(seed=0)
    assert len(world.pairs("train", gpu(stem, "N_TRAIN"))) == gpu(stem, "N_TRAIN")
    assert len(world.pairs("test", gpu(stem, "N_TEST"))) == gpu(stem, "N_TEST")
    assert len(world.candidate_pools(gpu(stem, "N_POOL"), 32)) == gpu(stem, "N_POOL")
    assert len(make_problems(gpu(stem, "N_PROBLEMS"), seed=0, split="train")) == gpu(stem, "N_PROBLEMS")
    assert len(make_problems(gpu(stem, "N_TEST_PROBLEMS"), seed=0, split="test")) == gpu(stem, "N_TEST_PROBLEMS")


def test_ch08_rb2_bench():
    from rmcourse.rewardbench2 import world_rb2_bench
    from rmcourse.world import PreferenceWorld

    n = gpu("08_beyond_one_scalar", "N_BENCH")
    assert len(world_rb2_bench(PreferenceWorld(seed=0), n, split="test", seed=0)) > 0


def test_ch08b_data():
    from rmcourse.world import PreferenceWorld

    stem = "08b_dpo_implicit_reward"
    world = PreferenceWorld(seed=0)
    assert len(world.pairs("train", gpu(stem, "N_DPO_TRAIN"))) == gpu(stem, "N_DPO_TRAIN")
    assert len(world.pairs("test", gpu(stem, "N_DPO_EVAL"))) == gpu(stem, "N_DPO_EVAL")
    n = gpu(stem, "N_DPO_TRAIN") * gpu(stem, "N_DRAWS")  # disjoint training draws
    assert len(world.pairs("train", n)) == n
