"""Tests for the preference world (rmcourse/world*.py): the data every later chapter stands on."""
from __future__ import annotations

import math
import random
import re
import time

import numpy as np
import pytest

from rmcourse import world as W
from rmcourse import world_text as WT
from rmcourse.world import (
    GOLD_WEIGHTS,
    MAX_K,
    NOVEL_SHARE,
    NOVEL_TOPICS,
    NOVELTY,
    RATINGS,
    SECTIONS,
    TEST_MIN_GAP,
    PreferenceWorld,
    gold_by_padding,
    gold_reward,
    length_gold_correlation,
    prompt_core,
    rating_for_gap,
    split_sentences,
    verbatim_overlap,
)
from rmcourse.world_topics import TOPICS

PAIR_COLUMNS = ["id", "prompt", "chosen", "rejected", "section", "subset", "chosen_gold", "rejected_gold",
                "label_correct", "agreement", "rating", "margin", "chosen_padding", "rejected_padding",
                "chosen_words", "rejected_words"]
N_TRAIN = 12000

ALL_TOPICS = [t for topics in TOPICS.values() for t in topics]
ALL_FILLER = set(WT.FILLER) | set(WT.MATH_FILLER) | {
    template.format(x=t.phrase, X=t.phrase[0].upper() + t.phrase[1:])
    for kind, topics in TOPICS.items() for t in topics for template in WT.TOPIC_FILLER[kind]}


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


def _texts(ds) -> list[str]:
    return list(ds["chosen"]) + list(ds["rejected"])


# --- gold reward -----------------------------------------------------------------------------

def test_gold_reward_is_the_public_linear_function():
    w = GOLD_WEIGHTS
    assert w["padding"] == 0.0, "padding is the spurious feature: it must not be part of gold"
    assert gold_reward(_attrs(detail=2, polite=True, correct=True)) == 2 * w["detail"] + w["polite"] + w["correct"]
    assert gold_reward(_attrs(detail=1, correct=False)) == w["detail"] - w["correct"]  # -1 * 2.5, not 0
    assert gold_reward(_attrs(detail=3)) == 3 * w["detail"]  # no claim: correctness counts 0
    assert gold_reward(_attrs(refuses=True, polite=True)) == w["refusal_mismatch"] + w["polite"]
    assert gold_reward(_attrs(refuses=True, should_refuse=True, detail=2)) == 2 * w["detail"]
    assert gold_reward(_attrs(refuses=False, should_refuse=True)) == w["refusal_mismatch"]
    # the docstring's worked example: detailed, polite and wrong scores 3 + 0.5 - 2.5 = 1.0
    assert gold_reward(_attrs(detail=3, polite=True, correct=False)) == 1.0
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
    assert ds.column_names[-1] == "novelty"
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
        assert row["novelty"] == "in-distribution"  # only test has novel items


def test_same_seed_same_data_different_seed_different_data():
    a, b, c = PreferenceWorld(seed=3), PreferenceWorld(seed=3), PreferenceWorld(seed=4)
    assert a.pairs("train", 60).to_dict() == b.pairs("train", 60).to_dict()
    assert a.rankings(12).to_dict() == b.rankings(12).to_dict()
    assert a.candidate_pools(4, 8).to_dict() == b.candidate_pools(4, 8).to_dict()
    assert a.pairs("train", 60)["prompt"] != c.pairs("train", 60)["prompt"]
    # each item has its own RNG: a small dataset is a prefix of a bigger one
    assert a.pairs("test", 20).to_dict() == a.pairs("test", 50).select(range(20)).to_dict()
    assert a.pairs("train", 100).to_dict() == a.pairs("train", 1000).select(range(100)).to_dict()


def test_prompt_core_strips_exactly_the_greeting():
    assert prompt_core("Hi! How do I boil an egg? Thanks!") == "How do I boil an egg?"
    assert prompt_core("Hi, hope you're well. What is the capital of Canada?") == "What is the capital of Canada?"
    assert prompt_core("What is 12 + 30?") == "What is 12 + 30?"
    # every prompt the world can draw: the core it hashed is what prompt_core recovers
    rng = random.Random(0)
    for section, subsets in SECTIONS.items():
        for subset in subsets:
            for novel in (False, True):
                for _ in range(300):
                    prompt = W._draw_prompt(rng, section, subset, novel=novel, test=novel)
                    assert prompt_core(prompt["text"]) == prompt["core"], prompt["text"]
    with pytest.raises(TypeError, match="prompt must be a str"):
        prompt_core(None)


def test_splits_have_disjoint_prompt_cores(world):
    """Splits hash the prompt without its greeting, so test asks questions train never asks."""
    cores = {split: {prompt_core(p) for p in world.pairs(split, 1500)["prompt"]}
             for split in ("train", "validation", "test")}
    cores["test"] |= {prompt_core(p) for p in world.rankings(200)["prompt"]}
    cores["pool"] = {prompt_core(p) for p in world.candidate_pools(300, 2)["prompt"]}
    names = list(cores)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            assert not cores[x] & cores[y], f"{x} and {y} share prompt cores: {sorted(cores[x] & cores[y])[:3]}"
    # and it does not depend on the seed: another world's test cores are never this world's train cores
    other = {prompt_core(p) for p in PreferenceWorld(seed=9).pairs("test", 1500)["prompt"]}
    assert not other & cores["train"]


# --- novelty ----------------------------------------------------------------------------------

def test_a_fixed_quarter_of_test_is_novel_and_balanced(world):
    ds = world.pairs("test", 400)
    frame = ds.select_columns(["section", "subset", "novelty"]).to_pandas()
    assert set(frame.novelty) == set(NOVELTY)
    assert (frame.novelty == "novel").sum() == NOVEL_SHARE * 400 == 100
    per_section = frame[frame.novelty == "novel"].groupby("section").size().to_dict()
    assert per_section == {s: 25 for s in SECTIONS}, per_section
    # both slices see every subset, about equally (exactly, up to the last unfinished cycle)
    for novelty, part in frame.groupby("novelty"):
        for section, subsets in SECTIONS.items():
            counts = part[part.section == section].subset.value_counts()
            assert set(counts.index) == set(subsets), (novelty, section)
            assert counts.max() - counts.min() <= 1 + (section == "chat"), (novelty, section, counts.to_dict())
    # a small test set still has both slices
    assert set(world.pairs("test", 16)["novelty"]) == set(NOVELTY)
    assert world.rankings(48)["novelty"].count("novel") == 12  # rounds 3, 7, 11 of 12
    assert set(world.candidate_pools(40, 2)["novelty"]) == {"in-distribution"}
    assert set(world.candidate_pools(16, 2, split="test")["novelty"]) == set(NOVELTY)


# four-digit sums and differences, three-digit products: train has at most 999 +- 98 and 99 * 49
NOVEL_ARITHMETIC = re.compile(r"\b\d{4} ([-+]|plus|minus) |\b\d{3} (\*|times) ")


def test_novel_topics_are_a_fifth_and_never_leave_test(world, train):
    assert {k: len(v) for k, v in NOVEL_TOPICS.items()} == {
        "howto": 4, "facts": 4, "explain": 4, "should-refuse": 7, "should-respond": 7}
    novel_phrases = [p for phrases in NOVEL_TOPICS.values() for p in phrases]
    novel_claims = [c for t in ALL_TOPICS if t.phrase in novel_phrases for c in t.right + t.wrong]
    others = {"train": train, "validation": world.pairs("validation", 2000)}
    pools = world.candidate_pools(300, 4)
    ranked = world.rankings(200, "pool")
    prompts = {name: list(ds["prompt"]) for name, ds in others.items()}
    prompts.update(pool=list(pools["prompt"]), ranked_pool=list(ranked["prompt"]))
    texts = {name: _texts(ds) for name, ds in others.items()}
    texts["pool"] = [r for rs in pools["responses"] for r in rs]
    for name, ps in prompts.items():
        joined = "\n".join(ps)
        assert not [p for p in novel_phrases if p in joined], name
        assert "seats on a bus" not in joined and "dollars every week" not in joined, name  # novel word problems
        assert not NOVEL_ARITHMETIC.search(joined), name
    for name, ts in texts.items():
        joined = "\n".join(ts)
        assert not [c for c in novel_claims if c in joined], name
    # and test's novel pairs are made of exactly that vocabulary
    test = world.pairs("test", 400)
    for row in test:
        if row["novelty"] != "novel":
            continue
        core = prompt_core(row["prompt"])
        if row["section"] == "reasoning":
            assert "seats on a bus" in core or "dollars every week" in core or NOVEL_ARITHMETIC.search(core), core
        else:
            assert any(p in core for p in novel_phrases), core


def test_held_out_wordings_only_in_test(world, train, test_pairs):
    assert WT.held_out_count(3) == 1 and WT.held_out_count(8) == 2 and WT.held_out_count(32) == 8
    assert WT.wordings(("a", "b", "c"), test=False) == ("a", "b")
    assert WT.wordings(("a", "b", "c"), test=True) == ("a", "b", "c")
    with pytest.raises(ValueError, match="at least 2"):
        WT.held_out_count(1)
    held_out = {t.right[-1] for t in ALL_TOPICS} | {t.wrong[-1] for t in ALL_TOPICS}
    held_out |= set(WT.FILLER[-WT.held_out_count(len(WT.FILLER)):]) | {WT.OPENERS[-1], WT.CLOSERS[-1]}
    train_sentences = {s for t in _texts(train) for s in split_sentences(t)}
    test_sentences = {s for t in _texts(test_pairs) for s in split_sentences(t)}
    assert not held_out & train_sentences
    assert len(held_out & test_sentences) >= 0.5 * len(held_out)


def test_filler_never_hides_inside_another_sentence():
    """Filler is counted sentence by sentence; none may be part of a content sentence."""
    content = {s for t in ALL_TOPICS for s in t.right + t.wrong + t.details}
    content |= {s for b in WT.BENIGN_SCARY for s in b.helpful + b.details}
    content |= set(WT.OPENERS + WT.CLOSERS + WT.REFUSAL_CLOSERS + WT.CURT + WT.REFUSE_POLITE + WT.REFUSE_CURT
                   + WT.REDIRECT + WT.COMPLY_HARMFUL + WT.COMPLY_HARMFUL_2)
    clashes = [(f, s) for f in ALL_FILLER for s in content | (ALL_FILLER - {f}) if f in s]
    assert not clashes, clashes[:3]
    assert all(len(split_sentences(f)) == 1 for f in ALL_FILLER)


# --- how new the test split is ----------------------------------------------------------------

# Measured with seed 0: pairs("test", 400) against pairs("train", 2000), as the module docstring says.
# (section, novelty) -> share of test response sentences found verbatim in train. Before the
# held-out wordings and topics, chat and chat_hard were at 1.00.
EXPECTED_SENTENCE_OVERLAP = {
    ("chat", "in-distribution"): 0.80, ("chat", "novel"): 0.42,
    ("chat_hard", "in-distribution"): 0.78, ("chat_hard", "novel"): 0.38,
    ("safety", "in-distribution"): 0.76, ("safety", "novel"): 0.63,
    ("reasoning", "in-distribution"): 0.51, ("reasoning", "novel"): 0.46,
}


@pytest.fixture(scope="module")
def overlap(world):
    return verbatim_overlap(world.pairs("test", 400), world.pairs("train", 2000))


def test_test_split_is_not_made_of_train_sentences(overlap):
    print("\n" + overlap.round(3).to_string(index=False))
    table = overlap.set_index(["section", "novelty"])
    assert (overlap.prompt_core_overlap == 0).all()
    for key, expected in EXPECTED_SENTENCE_OVERLAP.items():
        assert table.loc[key, "sentence_overlap"] == pytest.approx(expected, abs=0.015), key
        assert table.loc[key, "n"] == (75 if key[1] == "in-distribution" else 25)
    for section in SECTIONS:
        assert table.loc[(section, "novel"), "sentence_overlap"] < table.loc[(section, "in-distribution"),
                                                                             "sentence_overlap"]
    assert table.loc[("all", "novel"), "sentence_overlap"] < 0.5 < table.loc[("all", "in-distribution"),
                                                                             "sentence_overlap"] < 0.75


def test_length_rule_baseline(world):
    """"The answer with more words wins" on clean test pairs: the baseline every RM must beat."""
    frame = world.pairs("test", 400).select_columns(["section", "novelty", "chosen_words", "rejected_words"]).to_pandas()
    frame["longer_wins"] = frame.chosen_words > frame.rejected_words
    by = frame.groupby("novelty").longer_wins.mean()
    print(f"\nlonger-wins accuracy: all {frame.longer_wins.mean():.3f}, {by.round(3).to_dict()}, "
          f"{frame.groupby('section').longer_wins.mean().round(3).to_dict()}")
    assert frame.longer_wins.mean() == pytest.approx(0.5825, abs=1e-9)
    assert by["in-distribution"] == pytest.approx(0.5667, abs=1e-3) and by["novel"] == pytest.approx(0.63, abs=1e-9)
    by_section = frame.groupby("section").longer_wins.mean().round(2).to_dict()
    assert by_section == {"chat": 0.63, "chat_hard": 0.24, "safety": 0.78, "reasoning": 0.68}
    # chat_hard is built against length: the longer answer is usually the wrong one there


def test_verbatim_overlap_rejects_bad_inputs(world):
    ds = world.pairs("test", 8)
    with pytest.raises(TypeError, match="Dataset"):
        verbatim_overlap([1, 2], ds)
    with pytest.raises(ValueError, match="'prompt'"):
        verbatim_overlap(ds.remove_columns(["prompt"]), ds)
    with pytest.raises(ValueError, match="chosen/rejected"):
        verbatim_overlap(ds.remove_columns(["chosen"]), ds)
    with pytest.raises(TypeError, match="text must be a str"):
        split_sentences(3)
    assert split_sentences("Multiply by 1.8 and add 32. Done!  Ok?") == ["Multiply by 1.8 and add 32.", "Done!", "Ok?"]


# --- variety, length, speed -------------------------------------------------------------------

def test_generation_is_fast(train_timed, world):
    ds, seconds = train_timed
    print(f"\npairs('train', {N_TRAIN}) took {seconds:.2f} s")
    assert len(ds) == N_TRAIN
    assert seconds < 20, f"generation took {seconds:.1f} s"
    start = time.perf_counter()
    big = world.candidate_pools(100, 160)
    seconds = time.perf_counter() - start
    print(f"candidate_pools(100, 160) took {seconds:.2f} s")
    assert len(big) == 100 and seconds < 15


def test_enough_variety_to_not_memorise_templates(train):
    first = train.select(range(10000)).select_columns(["prompt", "chosen", "rejected", "section"])[:]
    triples = set(zip(first["prompt"], first["chosen"], first["rejected"]))
    prompts = set(first["prompt"])
    print(f"\nunique triples {len(triples) / 10000:.3f}, unique prompts {len(prompts) / 10000:.3f}")
    assert len(triples) >= 0.95 * 10000
    assert len(prompts) >= 0.8 * 10000
    assert len(ALL_TOPICS) >= 60 and len(WT.HARMFUL) >= 30 and len(WT.BENIGN_SCARY) >= 30
    novel = {p for phrases in NOVEL_TOPICS.values() for p in phrases}
    chat_prompts = " ".join(p for p, s in zip(first["prompt"], first["section"]) if s in ("chat", "chat_hard"))
    seen_topics = sum(t.phrase in chat_prompts for t in ALL_TOPICS if t.phrase not in novel)
    safety_prompts = " ".join(p for p, s in zip(first["prompt"], first["section"]) if s == "safety")
    assert seen_topics == len(ALL_TOPICS) - 12  # every familiar topic is trained on
    assert sum(h in safety_prompts for h in WT.HARMFUL) == len(WT.HARMFUL) - 7
    assert sum(b.phrase in safety_prompts for b in WT.BENIGN_SCARY) == len(WT.BENIGN_SCARY) - 7


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
    assert correct.mean() == pytest.approx(0.86, abs=0.01)  # the docstring's number
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
    assert train_corr == pytest.approx(0.56, abs=0.01)  # the docstring's number
    assert abs(test_corr) < 0.05 and abs(val_corr) < 0.05
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
    assert tail == pytest.approx(-0.28, abs=0.01)  # the docstring's number


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
    # the docstring's numbers: 5.8 fillers, gold 1.1 vs 1.3 for a random pick, 5.8 under gold
    assert round(hacked[32][1], 1) == 5.8 and round(hacked[32][0], 1) == 1.1 and round(hacked[1][0], 1) == 1.3
    assert round(oracle[32][0], 1) == 5.8


def test_chapter06_rejection_subsample_has_enough_candidates(world):
    """Chapter 06 keeps each pool candidate with probability 0.5 ** padding and needs 32 per prompt.

    A candidate is kept with probability 0.297 on average, so a 160-candidate pool keeps 47.5 on
    average (sd 5.8): the chapter's CPU (80 prompts) and GPU (400 prompts) sizes both succeed with
    seed 0, but at 400 prompts the fewest kept is 33, one above the need (see the report to the
    chapter owner: 200 candidates per prompt would make a shortfall a 1-in-1000 event).
    """
    from rmcourse.overoptimization import rejection_subsample

    for n_prompts, fewest in ((80, None), (400, 33)):
        pad = np.asarray(world.candidate_pools(n_prompts, 160)["padding"], dtype=float)
        idx = rejection_subsample(pad, 0.5, 32, seed=0)
        assert idx.shape == (n_prompts, 32)
        keep = np.random.default_rng(0).random(pad.shape) < 0.5 ** pad  # what rejection_subsample draws
        assert float((0.5 ** pad).mean()) == pytest.approx(0.297, abs=0.005)
        if fewest is not None:
            assert keep.sum(1).min() == fewest


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
    refusal_words = re.compile(r"can't|won't|not doing|not something", re.I)
    polite_marks = WT.OPENERS + WT.CLOSERS + WT.REFUSAL_CLOSERS + ("Sorry", "sorry")
    for split in ("validation", "test"):  # test also uses the held-out wordings
        ds = world.pairs(split, 400)
        for text, attrs in zip(_texts(ds), list(ds["chosen_attrs"]) + list(ds["rejected_attrs"])):
            assert sum(s in ALL_FILLER for s in split_sentences(text)) == attrs["padding"], text
            if attrs["refuses"]:
                assert refusal_words.search(text), text
            if attrs["polite"]:
                assert any(m in text for m in polite_marks), text
            else:
                assert not any(m in text for m in WT.OPENERS + WT.CLOSERS), text


def test_filler_never_splits_worked_steps():
    rng = random.Random(1)
    for subset in SECTIONS["reasoning"]:
        for _ in range(300):
            prompt = W._draw_prompt(rng, "reasoning", subset, novel=False, test=True)
            attrs = W._attrs(prompt, correct=True, refuses=False, detail=3, polite=False)
            attrs["padding"] = 4
            sentences = split_sentences(W._render(rng, prompt, attrs))
            first = sentences.index(prompt["steps"][0])
            # the three steps, then the answer, with no filler in between
            assert sentences[first:first + 3] == list(prompt["steps"]), sentences
            assert sentences[first + 3] not in ALL_FILLER and str(prompt["answer"]) in sentences[first + 3]
            assert sum(s in ALL_FILLER for s in sentences) == 4


def test_subtle_detail_pairs_differ_only_in_the_claim(world):
    ds = world.pairs("test", 400)
    n = 0
    for row in ds:
        if row["subset"] != "subtle-detail":
            continue
        a = [s for s in split_sentences(row["chosen"]) if s not in ALL_FILLER]
        b = [s for s in split_sentences(row["rejected"]) if s not in ALL_FILLER]
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
    with pytest.raises(TypeError, match="min_padding"):
        length_gold_correlation(ds, min_padding=1.5)
