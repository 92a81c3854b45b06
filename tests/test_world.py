"""Tests for the preference world (rmcourse/world.py): the data every later chapter stands on."""
from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest

from rmcourse import world as W
from rmcourse.world import (
    GOLD_WEIGHTS,
    MAX_K,
    RATINGS,
    SECTIONS,
    TEST_MIN_GAP,
    PreferenceWorld,
    gold_by_padding,
    gold_reward,
    length_gold_correlation,
    rating_for_gap,
)

PAIR_COLUMNS = ["id", "prompt", "chosen", "rejected", "section", "subset", "chosen_gold", "rejected_gold",
                "label_correct", "agreement", "rating", "margin", "chosen_padding", "rejected_padding",
                "chosen_words", "rejected_words"]
N_TRAIN = 12000


@pytest.fixture(scope="module")
def world() -> PreferenceWorld:
    return PreferenceWorld(seed=0)


@pytest.fixture(scope="module")
def train_timed(world):
    start = time.perf_counter()
    ds = world.pairs("train", N_TRAIN)
    return ds, time.perf_counter() - start


@pytest.fixture(scope="module")
def train(train_timed):
    return train_timed[0]


@pytest.fixture(scope="module")
def test_pairs(world):
    return world.pairs("test", 3000)


@pytest.fixture(scope="module")
def pools(world):
    return world.candidate_pools(400, 32)


def _attrs(**kw):
    base = {"correct": None, "refuses": False, "detail": 0, "polite": False, "padding": 0, "should_refuse": False}
    base.update(kw)
    return base


# --- gold reward -----------------------------------------------------------------------------

def test_gold_reward_is_the_public_linear_function():
    w = GOLD_WEIGHTS
    assert w["padding"] == 0.0, "padding is the spurious feature: it must not be part of gold"
    assert gold_reward(_attrs(detail=2, polite=True, correct=True)) == 2 * w["detail"] + w["polite"] + w["correct"]
    assert gold_reward(_attrs(detail=1, correct=False)) == w["detail"] - w["correct"]
    assert gold_reward(_attrs(detail=3)) == 3 * w["detail"]  # no claim: correctness counts 0
    assert gold_reward(_attrs(refuses=True, polite=True)) == w["refusal_mismatch"] + w["polite"]
    assert gold_reward(_attrs(refuses=True, should_refuse=True, detail=2)) == 2 * w["detail"]
    assert gold_reward(_attrs(refuses=False, should_refuse=True)) == w["refusal_mismatch"]
    a = _attrs(detail=1, polite=True, correct=True)
    assert gold_reward({**a, "padding": 6}) == gold_reward(a)
    assert gold_reward({k: v for k, v in a.items() if k != "padding"}) == gold_reward(a)


@pytest.mark.parametrize("attrs, err, words", [
    ({"detail": 1, "polite": True, "correct": True, "refuses": False}, ValueError, "should_refuse"),
    (_attrs(detail=4), ValueError, "detail"),
    (_attrs(detail=-1), ValueError, "detail"),
    (_attrs(padding=-2), ValueError, "padding"),
    (_attrs(polite="yes"), TypeError, "polite"),
    (_attrs(correct=1), TypeError, "correct"),
    (_attrs(detail=1.5), TypeError, "detail"),
    ([("detail", 1)], TypeError, "mapping"),
])
def test_gold_reward_bad_inputs(attrs, err, words):
    with pytest.raises(err, match=words):
        gold_reward(attrs)


def test_rating_for_gap_follows_llama2_scale():
    assert rating_for_gap(5.0) == ("significantly better", 1.0)
    assert rating_for_gap(-3.0) == ("significantly better", 1.0)
    assert rating_for_gap(2.0) == ("better", 2 / 3)
    assert rating_for_gap(1.0) == ("slightly better", 1 / 3)
    assert rating_for_gap(0.5) == ("negligibly better", 0.0)
    assert [m for _, _, m in RATINGS] == sorted([m for _, _, m in RATINGS], reverse=True)
    with pytest.raises(ValueError, match="finite"):
        rating_for_gap(float("nan"))
    with pytest.raises(TypeError, match="number"):
        rating_for_gap("big")


# --- schema, determinism, splits --------------------------------------------------------------

def test_pairs_schema_and_consistency(world):
    ds = world.pairs("validation", 80)
    assert ds.column_names[:len(PAIR_COLUMNS)] == PAIR_COLUMNS
    assert len(ds) == 80 and len(set(ds["id"])) == 80
    counts = {s: ds["section"].count(s) for s in SECTIONS}
    assert counts == {s: 20 for s in SECTIONS}, counts  # round-robin, balanced
    assert {(sec, sub) for sec, sub in zip(ds["section"], ds["subset"])} == {
        (sec, sub) for sec, subs in SECTIONS.items() for sub in subs}
    for row in ds:
        assert row["prompt"] and row["chosen"] and row["rejected"] and row["chosen"] != row["rejected"]
        assert row["subset"] in SECTIONS[row["section"]]
        assert row["chosen_gold"] == gold_reward(row["chosen_attrs"])
        assert row["rejected_gold"] == gold_reward(row["rejected_attrs"])
        assert row["label_correct"] == (row["chosen_gold"] > row["rejected_gold"])
        assert (row["rating"], row["margin"]) == rating_for_gap(row["chosen_gold"] - row["rejected_gold"])
        assert row["chosen_padding"] == row["chosen_attrs"]["padding"]
        assert row["chosen_words"] == len(row["chosen"].split())
        assert row["rejected_words"] == len(row["rejected"].split())
        assert 0 < row["agreement"] <= 1 and math.isclose(row["agreement"] * 5, round(row["agreement"] * 5))
        assert row["chosen_gold"] != row["rejected_gold"]  # exact ties have no right label


def test_same_seed_same_data_different_seed_different_data():
    a, b, c = PreferenceWorld(seed=3), PreferenceWorld(seed=3), PreferenceWorld(seed=4)
    assert a.pairs("train", 60).to_dict() == b.pairs("train", 60).to_dict()
    assert a.rankings(12).to_dict() == b.rankings(12).to_dict()
    assert a.candidate_pools(4, 8).to_dict() == b.candidate_pools(4, 8).to_dict()
    assert a.pairs("train", 60)["prompt"] != c.pairs("train", 60)["prompt"]
    # each item has its own RNG: a small dataset is a prefix of a bigger one
    assert a.pairs("test", 20).to_dict() == a.pairs("test", 50).select(range(20)).to_dict()


def test_splits_have_disjoint_prompts(world):
    prompts = {split: set(world.pairs(split, 1500)["prompt"][:]) for split in ("train", "validation", "test")}
    prompts["test"] |= set(world.rankings(200)["prompt"][:])
    prompts["pool"] = set(world.candidate_pools(300, 2)["prompt"][:])
    names = list(prompts)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            assert not prompts[x] & prompts[y], f"{x} and {y} share prompts"
    # and it does not depend on the seed: another world's test prompts are never in this train set
    assert not set(PreferenceWorld(seed=9).pairs("test", 1500)["prompt"][:]) & prompts["train"]


# --- variety, length, speed -------------------------------------------------------------------

def test_generation_is_fast(train_timed):
    ds, seconds = train_timed
    print(f"\npairs('train', {N_TRAIN}) took {seconds:.2f} s")
    assert len(ds) == N_TRAIN
    assert seconds < 20, f"generation took {seconds:.1f} s"


def test_enough_variety_to_not_memorise_templates(train):
    first = train.select(range(10000)).select_columns(["prompt", "chosen", "rejected", "section"])[:]
    triples = set(zip(first["prompt"], first["chosen"], first["rejected"]))
    prompts = set(first["prompt"])
    print(f"\nunique triples {len(triples) / 10000:.3f}, unique prompts {len(prompts) / 10000:.3f}")
    assert len(triples) >= 0.95 * 10000
    assert len(prompts) >= 0.8 * 10000
    assert len(W._ALL_TOPICS) >= 60 and len(W._HARMFUL) >= 30 and len(W._BENIGN_SCARY) >= 30
    chat_prompts = " ".join(p for p, s in zip(first["prompt"], first["section"]) if s in ("chat", "chat_hard"))
    seen_topics = sum(topic[0] in chat_prompts for _, topic in W._ALL_TOPICS)
    safety_prompts = " ".join(p for p, s in zip(first["prompt"], first["section"]) if s == "safety")
    assert seen_topics >= 60
    assert sum(h in safety_prompts for h in W._HARMFUL) >= 30
    assert sum(b[0] in safety_prompts for b in W._BENIGN_SCARY) >= 30


def test_texts_are_short_enough_for_minilm(train):
    prompt_words = np.array([len(p.split()) for p in train["prompt"][:]])
    total = np.concatenate([prompt_words + np.array(train["chosen_words"][:]),
                            prompt_words + np.array(train["rejected_words"][:])])
    share = float((total <= 90).mean())
    print(f"\nprompt+response words: median {np.median(total):.0f}, max {total.max()}, share <= 90: {share:.3f}")
    assert 20 <= np.median(total) <= 90
    assert share >= 0.95


# --- labels -----------------------------------------------------------------------------------

def test_train_labels_are_noisy_like_real_annotators(train):
    correct = np.array(train["label_correct"][:])
    agreement = np.array(train["agreement"][:])
    print(f"\ntrain label_correct {correct.mean():.3f}, mean agreement {agreement.mean():.3f}")
    assert 0.7 <= correct.mean() <= 0.95
    assert abs(agreement.mean() - correct.mean()) < 0.1
    assert agreement[correct].mean() > agreement[~correct].mean() + 0.3
    ratings = np.array(train["rating"][:])
    acc = {r: correct[ratings == r].mean() for _, r, _ in RATINGS}
    # Llama 2's pattern: clearer ratings are labelled right more often
    assert acc["significantly better"] > acc["better"] > acc["slightly better"] > acc["negligibly better"]


def test_test_split_is_clean(test_pairs):
    assert all(test_pairs["label_correct"])
    gaps = np.array(test_pairs["chosen_gold"][:]) - np.array(test_pairs["rejected_gold"][:])
    assert gaps.min() >= TEST_MIN_GAP
    assert "negligibly better" not in set(test_pairs["rating"])


def test_temperature_controls_label_noise():
    careful = PreferenceWorld(seed=0, temperature=0.01).pairs("train", 400)
    noisy = PreferenceWorld(seed=0, temperature=5.0).pairs("train", 400)
    assert np.mean(careful["label_correct"]) > 0.99
    assert np.mean(noisy["label_correct"]) < 0.75
    assert PreferenceWorld(n_annotators=1).annotator_temperatures == (1.0,)
    temps = PreferenceWorld(n_annotators=5).annotator_temperatures
    assert len(temps) == 5 and temps[0] < temps[-1]


# --- the spurious length feature --------------------------------------------------------------

def test_padding_correlates_with_gold_in_train_only(world, train, test_pairs):
    train_corr = length_gold_correlation(train)
    test_corr = length_gold_correlation(test_pairs)
    val_corr = length_gold_correlation(world.pairs("validation", 3000))
    print(f"\ncorr(padding, gold): train {train_corr:.3f}, validation {val_corr:.3f}, test {test_corr:.3f}")
    assert train_corr > 0.2
    assert abs(test_corr) < 0.1 and abs(val_corr) < 0.1
    # chosen answers are longer in train because of the shortcut
    ch, rj = np.array(train["chosen_padding"][:]), np.array(train["rejected_padding"][:])
    assert (ch > rj).mean() > (ch < rj).mean() + 0.2


def test_pools_punish_heavy_padding(pools):
    assert all(len(r) == 32 == len(g) == len(p) == len(w)
               for r, g, p, w in zip(pools["responses"], pools["gold"], pools["padding"], pools["words"]))
    table = gold_by_padding(pools)
    print("\n" + table.round(2).to_string(index=False))
    assert list(table["padding"]) == list(range(7))  # wider than train's 0..4
    heavy = table[table.padding >= 4]
    light = table[table.padding <= 3]
    assert heavy.mean_gold.max() < light.mean_gold.min() - 0.8
    assert list(heavy.mean_gold) == sorted(heavy.mean_gold, reverse=True)
    tail = length_gold_correlation(pools, min_padding=3)
    print(f"pool corr(padding, gold) overall {length_gold_correlation(pools):.3f}, padding >= 3: {tail:.3f}")
    assert tail < -0.1


def test_best_of_n_with_a_length_loving_proxy_gets_hacked(pools):
    """A proxy that pays for length and cannot check facts or sums: chosen answers get longer, gold falls."""
    keep = np.array([s in ("chat", "chat_hard", "reasoning") for s in pools["section"][:]])
    gold = np.array(pools["gold"][:])[keep]
    padding = np.array(pools["padding"][:])[keep]
    attrs = [a for a, k in zip(pools["attrs"][:], keep) if k]
    proxy = np.array([[a["detail"] + 0.5 * a["polite"] - 3.0 * (a["refuses"] != a["should_refuse"])
                       + 1.0 * a["padding"] for a in row] for row in attrs])

    def best_of(scores, n):
        pick = scores[:, :n].argmax(1)
        rows = np.arange(len(scores))
        return gold[rows, pick].mean(), padding[rows, pick].mean()

    hacked = {n: best_of(proxy, n) for n in (1, 4, 32)}
    oracle = {n: best_of(gold, n) for n in (1, 4, 32)}
    print(f"\nproxy BoN (gold, padding): {hacked}; gold BoN: {oracle}")
    assert hacked[32][1] > hacked[1][1] + 1.5          # longer ...
    assert hacked[32][0] < hacked[1][0]                # ... and worse than no selection at all
    assert oracle[32][0] > oracle[4][0] > oracle[1][0]  # while the gold reward itself is optimisable


# --- rankings and pools -----------------------------------------------------------------------

def test_rankings_are_k_wise_with_distinct_gold(world):
    ds = world.rankings(60)
    assert ds.column_names[:6] == ["id", "prompt", "responses", "gold", "section", "subset"]
    sizes = [len(r) for r in ds["responses"]]
    assert min(sizes) >= 4 and max(sizes) <= 9 and len(set(sizes)) > 3
    for responses, gold in zip(ds["responses"], ds["gold"]):
        assert len(gold) == len(responses) == len(set(gold)) == len(set(responses))
    exact = world.rankings(8, k_min=MAX_K, k_max=MAX_K)
    assert all(len(set(g)) == MAX_K for g in exact["gold"])
    assert all(len(g) == 2 for g in world.rankings(4, k_min=2, k_max=2)["gold"])


def test_candidate_pool_sizes(world):
    ds = world.candidate_pools(8, pool_size=40)
    assert ds.column_names[:8] == ["id", "prompt", "responses", "gold", "padding", "words", "section", "subset"]
    assert all(len(r) == 40 for r in ds["responses"])
    assert [s for s in ds["section"][:4]] == list(SECTIONS)


# --- the signal is in the text ----------------------------------------------------------------

def test_every_attribute_leaves_a_visible_trace(world):
    ds = world.pairs("validation", 400)
    refusal_words = re.compile(r"can't|won't|not doing|not something", re.I)
    texts, attrs_list = ds["chosen"][:] + ds["rejected"][:], ds["chosen_attrs"][:] + ds["rejected_attrs"][:]
    for text, attrs in zip(texts, attrs_list):
        assert sum(text.count(s) for s in W._PADDING) == attrs["padding"], text
        if attrs["refuses"]:
            assert refusal_words.search(text), text
        polite_marks = W._OPENERS + W._CLOSERS + W._REFUSAL_CLOSERS + ["Sorry", "sorry"]
        if attrs["polite"]:
            assert any(m in text for m in polite_marks), text
        else:
            assert not any(m in text for m in W._OPENERS + W._CLOSERS), text


def test_subtle_detail_pairs_differ_only_in_the_claim(world):
    ds = world.pairs("test", 400)
    n = 0
    for row in ds:
        if row["subset"] != "subtle-detail":
            continue
        strip = lambda t: [s for s in re.split(r"(?<=[.!?])\s+", t) if s not in W._PADDING]  # noqa: E731
        a, b = strip(row["chosen"]), strip(row["rejected"])
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1, (a, b)
        n += 1
    assert n == 50


# --- bad inputs -------------------------------------------------------------------------------

@pytest.mark.parametrize("call, err, words", [
    (lambda w: w.pairs("xyz", 10), ValueError, "unknown split 'xyz'"),
    (lambda w: w.pairs("pool", 10), ValueError, "unknown split 'pool'"),
    (lambda w: w.pairs(1, 10), TypeError, "split"),
    (lambda w: w.pairs("train", 0), ValueError, "n must be"),
    (lambda w: w.pairs("train", -3), ValueError, "n must be"),
    (lambda w: w.pairs("train", 2.5), TypeError, "n must be an int"),
    (lambda w: w.pairs("train", True), TypeError, "n must be an int"),
    (lambda w: w.rankings(0), ValueError, "n_prompts"),
    (lambda w: w.rankings(5, k_min=6, k_max=4), ValueError, "k_min"),
    (lambda w: w.rankings(5, k_min=1), ValueError, "k_min"),
    (lambda w: w.rankings(5, k_max=MAX_K + 1), ValueError, "k_max"),
    (lambda w: w.rankings(5, split="dev"), ValueError, "unknown split 'dev'"),
    (lambda w: w.candidate_pools(5, pool_size=1), ValueError, "pool_size"),
    (lambda w: w.candidate_pools(5, pool_size="32"), TypeError, "pool_size"),
    (lambda w: w.candidate_pools(0), ValueError, "n_prompts"),
    (lambda w: w.candidate_pools(2, split="everything"), ValueError, "unknown split"),
])
def test_bad_inputs_name_the_problem(world, call, err, words):
    with pytest.raises(err, match=words):
        call(world)


@pytest.mark.parametrize("kwargs, err, words", [
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.0}, TypeError, "seed"),
    ({"n_annotators": 0}, ValueError, "n_annotators"),
    ({"temperature": 0}, ValueError, "temperature"),
    ({"temperature": float("inf")}, ValueError, "temperature"),
    ({"temperature": "hot"}, TypeError, "temperature"),
])
def test_bad_world_arguments(kwargs, err, words):
    with pytest.raises(err, match=words):
        PreferenceWorld(**kwargs)


def test_correlation_helpers_reject_bad_inputs(world):
    ds = world.pairs("test", 20)
    with pytest.raises(ValueError, match="unknown length measure 'chars'"):
        length_gold_correlation(ds, by="chars")
    with pytest.raises(ValueError, match="padding, words and gold"):
        length_gold_correlation(ds.remove_columns(["chosen_padding"]))
    with pytest.raises(TypeError, match="Dataset"):
        gold_by_padding([1, 2, 3])
    with pytest.raises(ValueError, match="undefined"):
        length_gold_correlation(ds, min_padding=50)
