"""PreferenceWorld.prompts: chat prompts with the vocabulary a sentence-level policy writes from."""
import zlib

import pytest

from rmcourse.world import SECTIONS, PreferenceWorld
from rmcourse.world_text import CLOSERS, CURT, FILLER, OPENERS, TOPIC_FILLER, held_out_count, wordings
from rmcourse.world_topics import TOPICS

KEYS = {"id", "text", "core", "section", "subset", "novelty", "right", "wrong", "details", "filler",
        "opener", "closer", "curt"}
SPLITS = ("train", "validation", "test", "pool")
# the core-hash buckets of each split, as in rmcourse.world (a prompt's split is decided by its core)
BUCKETS = {"train": range(0, 60), "validation": range(60, 70), "test": range(70, 85), "pool": range(85, 100)}


@pytest.fixture(scope="module")
def world():
    return PreferenceWorld(0)


@pytest.fixture(scope="module")
def by_split(world):
    return {split: world.prompts(split, 30) for split in SPLITS}


def _topic(prompt):
    """The world topic a prompt is about (found by its details, which are unique per topic)."""
    found = [(kind, t) for kind, topics in TOPICS.items() for t in topics if tuple(t.details) == prompt["details"]]
    assert len(found) == 1, prompt["core"]
    return found[0]


def test_prompts_are_prefix_stable_and_deterministic(world, by_split):
    for split in SPLITS:
        assert world.prompts(split, 7) == by_split[split][:7]
        assert PreferenceWorld(0).prompts(split, 30) == by_split[split]
    other = PreferenceWorld(1).prompts("train", 30)
    assert [p["text"] for p in other] != [p["text"] for p in by_split["train"]]


def test_prompt_dicts_have_the_documented_keys(by_split):
    for split, prompts in by_split.items():
        assert len(prompts) == 30
        for i, p in enumerate(prompts):
            assert set(p) == KEYS
            assert p["id"] == f"{split}-prompt-{i:06d}"
            assert p["section"] == "chat"
            assert p["subset"] == SECTIONS["chat"][i % len(SECTIONS["chat"])]  # round-robin
            assert p["novelty"] in ("in-distribution", "novel")
            assert isinstance(p["text"], str) and p["core"] in p["text"]
            for key in ("right", "wrong", "details", "filler", "opener", "closer", "curt"):
                assert isinstance(p[key], tuple) and p[key], key
                assert all(isinstance(s, str) and s for s in p[key]), key
            assert len(p["right"]) == len(p["wrong"])
            assert len(p["details"]) == 3
            assert len(set(p["filler"])) == len(p["filler"]) >= 6  # the policy writes up to six distinct fillers


def test_prompts_ask_about_a_topic_of_their_subset(by_split):
    for prompts in by_split.values():
        for p in prompts:
            kind, topic = _topic(p)
            assert kind == p["subset"]
            assert topic.phrase in p["core"]


def test_each_split_uses_its_own_cores(by_split):
    cores = {}
    for split, prompts in by_split.items():
        for p in prompts:
            assert zlib.crc32(p["core"].encode("utf-8")) % 100 in BUCKETS[split], (split, p["core"])
        cores[split] = {p["core"] for p in prompts}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not cores[a] & cores[b], (a, b)


@pytest.mark.parametrize("split", SPLITS)
def test_prompts_use_their_splits_wordings(split, by_split):
    test = split == "test"
    for p in by_split[split]:
        kind, topic = _topic(p)
        assert p["right"] == tuple(wordings(topic.right, test))
        assert p["wrong"] == tuple(wordings(topic.wrong, test))
        assert p["details"] == tuple(topic.details)
        assert p["opener"] == tuple(wordings(OPENERS, test))
        assert p["closer"] == tuple(wordings(CLOSERS, test))
        assert p["curt"] == tuple(wordings(CURT, test))
        generic = tuple(wordings(FILLER, test))
        assert p["filler"][: len(generic)] == generic
        on_topic = p["filler"][len(generic):]
        assert len(on_topic) == len(wordings(TOPIC_FILLER[kind], test))
        assert all(topic.phrase.lower() in s.lower() for s in on_topic)


def test_held_out_wordings_appear_only_in_test(by_split):
    held_out_openers = set(OPENERS[len(OPENERS) - held_out_count(len(OPENERS)):])
    held_out_filler = set(FILLER[len(FILLER) - held_out_count(len(FILLER)):])
    for split in ("train", "validation", "pool"):
        for p in by_split[split]:
            assert not held_out_openers & set(p["opener"])
            assert not held_out_filler & set(p["filler"])
    for p in by_split["test"]:
        assert held_out_openers <= set(p["opener"]) and held_out_filler <= set(p["filler"])


def test_prompts_validation(world):
    for section in ("chat_hard", "safety", "reasoning", "bogus"):
        with pytest.raises(ValueError, match="chat"):
            world.prompts("train", 3, section=section)
    with pytest.raises(ValueError, match="split"):
        world.prompts("dev", 3)
    with pytest.raises(TypeError, match="split"):
        world.prompts(0, 3)
    with pytest.raises(ValueError, match="n"):
        world.prompts("train", 0)
    with pytest.raises(TypeError, match="n"):
        world.prompts("train", 2.0)
    assert len(world.prompts("train", 1, section="chat")) == 1
