"""rmcourse.policy: the sentence-unit grammar, rendering, sampling, SFT and exact statistics."""
import copy
import random

import numpy as np
import pytest
import torch

from rmcourse.policy import (
    ACTIONS,
    BODY_BUDGET,
    CLOSER,
    CURT,
    DETAIL,
    END,
    FILLER,
    MAX_DETAIL,
    MAX_FILLER,
    MAX_STEPS,
    OPENER,
    RIGHT,
    START,
    WRONG,
    AnswerPolicy,
    _allowed,
    _masks,
    _state_space,
    _step,
    _transition,
    answer_attrs,
    answer_gold,
    demonstration,
    exact_stats,
    final_state,
    fit_sft,
    n_states,
    prompt_features,
    render,
    sample,
    sequence_logprobs,
    sft_sequences,
)
from rmcourse.world import PreferenceWorld, gold_reward

CLAIMS = (RIGHT, WRONG)


@pytest.fixture(scope="module")
def world():
    return PreferenceWorld(0)


@pytest.fixture(scope="module")
def demos(world, one_thread):
    """(prompts, sequences) of the chosen chat answers of 800 train pairs (what sft_reference fits)."""
    return sft_sequences(world.pairs("train", 800), seed=0)


@pytest.fixture(scope="module")
def ref(demos, one_thread):
    """A small SFT reference: what `sft_reference(PreferenceWorld(0), n_pairs=800, epochs=5)` builds."""
    prompts, seqs = demos
    policy = AnswerPolicy(seed=0)
    fit_sft(policy, prompt_features(prompts), seqs, epochs=5, seed=0)
    return policy.eval()


@pytest.fixture(scope="module")
def other(ref):
    """A policy different from ``ref``: its output biases pushed towards filler, away from detail."""
    pol = copy.deepcopy(ref)
    with torch.no_grad():
        pol.net[-1].bias[FILLER] += 1.0
        pol.net[-1].bias[DETAIL] -= 0.7
        pol.net[-1].bias[OPENER] += 0.5
    return pol.eval()


@pytest.fixture(scope="module")
def prompts(world):
    return world.prompts("train", 6)


@pytest.fixture(scope="module")
def feats(prompts):
    return prompt_features(prompts)


def _replay(seq):
    """Step a sequence through the scalar grammar; returns the final state."""
    state = START
    for a in seq:
        state = _step(state, a)
    return state


# ------------------------------------------------------------------------------------------
# grammar
# ------------------------------------------------------------------------------------------


def test_allowed_and_masks_agree_on_every_reachable_state():
    order, index, mask, succ = _state_space()
    assert order[0] == START and index[START] == 0
    vec = _masks(torch.tensor(order))
    for i, s in enumerate(order):
        want = set(_allowed(s))
        assert set(torch.nonzero(vec[i]).flatten().tolist()) == want, s
        assert set(torch.nonzero(mask[i]).flatten().tolist()) == want, s
        for a in range(len(ACTIONS)):
            assert (succ[i, a] >= 0) == (a in want)


def test_state_space_is_topological_and_closed():
    order, index, mask, succ = _state_space()
    assert len(set(order)) == len(order)
    for i, s in enumerate(order):
        for a in _allowed(s):
            t = _step(s, a)
            assert t in index, (s, a)
            assert index[t] > i, "a successor must come after its predecessor"
            assert succ[i, a] == index[t]
        # a live state always has a way forward, a finished one has none
        assert (len(_allowed(s)) == 0) == bool(s[5])


def test_transition_matches_step_on_every_allowed_move():
    order, *_ = _state_space()
    rows, acts, want = [], [], []
    for s in order:
        for a in _allowed(s):
            rows.append(s)
            acts.append(a)
            want.append(_step(s, a))
    got = _transition(torch.tensor(rows), torch.tensor(acts))
    assert got.tolist() == [list(w) for w in want]


def test_every_finished_state_is_a_well_formed_answer():
    order, *_ = _state_space()
    finished = [s for s in order if s[5]]
    assert finished
    for style, claim, nd, nf, closed, done in finished:
        assert claim in (1, 2), "exactly one claim in every finished answer"
        assert 1 + nd + nf <= BODY_BUDGET
        assert nd <= MAX_DETAIL and nf <= MAX_FILLER
    # the budget binds: both the detail-heavy and the filler-heavy extremes are reachable
    assert any(s[2] == MAX_DETAIL and 1 + s[2] + s[3] == BODY_BUDGET for s in finished)
    assert max(s[3] for s in finished) == BODY_BUDGET - 1


def test_n_states_counts_every_reachable_state():
    seen = set()

    def visit(state):  # depth first, independent of the breadth-first `_state_space`
        if state in seen:
            return
        seen.add(state)
        for a in _allowed(state):
            visit(_step(state, a))

    visit(START)
    assert n_states() == len(seen) == len(_state_space()[0])
    assert set(_state_space()[0]) == seen


def test_final_state_replays_the_grammar():
    assert final_state([]) == START
    seq = [CURT, FILLER, WRONG, DETAIL, FILLER, CLOSER, END]
    assert final_state(seq) == (2, 2, 1, 2, 1, 1) == _replay(seq)
    assert final_state(torch.tensor([RIGHT, END])) == (0, 1, 0, 0, 0, 1)
    with pytest.raises(ValueError, match="not allowed"):
        final_state([RIGHT, END, END])


def test_step_rejects_forbidden_actions_with_a_clear_message():
    with pytest.raises(ValueError, match="not allowed"):
        _step(START, END)  # no claim yet
    with pytest.raises(ValueError, match="not allowed"):
        _step(_replay([RIGHT]), WRONG)  # a second claim
    with pytest.raises(ValueError, match="not allowed"):
        _step(_replay([RIGHT]), OPENER)  # style only first
    with pytest.raises(ValueError, match="not allowed"):
        _step(_replay([RIGHT, CLOSER]), DETAIL)  # nothing but end after the closer
    with pytest.raises(ValueError, match="not allowed"):
        _step(_replay([RIGHT, DETAIL, DETAIL, DETAIL]), DETAIL)  # MAX_DETAIL
    full = _replay([RIGHT] + [FILLER] * (BODY_BUDGET - 1))
    with pytest.raises(ValueError, match="not allowed"):
        _step(full, FILLER)  # body budget
    # filler before the claim never takes the claim's slot
    pre = _replay([FILLER] * (BODY_BUDGET - 1))
    assert FILLER not in _allowed(pre) and RIGHT in _allowed(pre)


# ------------------------------------------------------------------------------------------
# sampling
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["ref", "random"])
def test_sampled_answers_follow_the_grammar(which, ref, feats):
    policy = ref if which == "ref" else AnswerPolicy(seed=3).eval()
    roll = sample(policy, feats, k=64, generator=torch.Generator().manual_seed(1))
    n = feats.shape[0] * 64
    assert len(roll) == n
    assert roll.actions.shape == (n, MAX_STEPS) and roll.states.shape == (n, MAX_STEPS, 6)
    assert roll.prompt_index.tolist() == [i for i in range(feats.shape[0]) for _ in range(64)]
    assert torch.equal(roll.mask, roll.actions >= 0)
    assert torch.all(roll.logprobs[~roll.mask] == 0)
    assert torch.all(roll.logprobs[roll.mask] <= 0)
    for i, seq in enumerate(roll.action_lists()):
        assert seq[-1] == END and seq.count(END) == 1
        assert sum(a in CLAIMS for a in seq) == 1, seq
        body = sum(a in (RIGHT, WRONG, DETAIL, FILLER) for a in seq)
        assert body <= BODY_BUDGET
        assert all(a not in (OPENER, CURT) for a in seq[1:])
        assert CLOSER not in seq[:-2]
        state = START
        for t, a in enumerate(seq):
            assert tuple(roll.states[i, t].tolist()) == state
            state = _step(state, a)  # raises if the sampler broke the grammar
        assert tuple(roll.final[i].tolist()) == state
        # the mask is a prefix: no valid token after the end
        assert roll.mask[i].sum() == len(seq) and bool(roll.mask[i, : len(seq)].all())


def test_sampling_is_reproducible_with_a_generator(ref, feats):
    a = sample(ref, feats, 8, torch.Generator().manual_seed(5))
    b = sample(ref, feats, 8, torch.Generator().manual_seed(5))
    c = sample(ref, feats, 8, torch.Generator().manual_seed(6))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.actions, c.actions)


def test_sample_validates_its_arguments(ref, feats):
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="k must be"):
            sample(ref, feats, bad)
    with pytest.raises(ValueError, match="prompt_feats"):
        sample(ref, feats[0], 2)


def test_sequence_logprobs_reproduce_the_samplers_logprobs(ref, other, feats):
    roll = sample(ref, feats, 32, torch.Generator().manual_seed(2))
    lp = sequence_logprobs(ref, feats, roll)
    assert lp.shape == roll.logprobs.shape
    assert lp.requires_grad
    torch.testing.assert_close(lp.detach(), roll.logprobs, atol=1e-5, rtol=1e-5)
    assert torch.all(lp[~roll.mask] == 0)
    assert torch.all(lp.detach().sum(1) <= 0)
    # under another policy the same answers get other log-probabilities (all finite: same grammar)
    lp_other = sequence_logprobs(other, feats, roll).detach()
    assert torch.isfinite(lp_other).all()
    assert (lp_other - roll.logprobs).abs().max() > 0.1
    assert torch.all(lp_other[~roll.mask] == 0)


def test_sequence_logprobs_gradient_is_finite_on_padded_rows(ref, feats):
    roll = sample(ref, feats, 4, torch.Generator().manual_seed(0))
    pol = copy.deepcopy(ref)
    lp = sequence_logprobs(pol, feats, roll)
    lp.sum().backward()
    for p in pol.parameters():
        assert torch.isfinite(p.grad).all()


def test_policy_rows_are_distributions_over_allowed_actions(ref, feats):
    order, _, mask, _ = _state_space()
    states = torch.tensor(order)
    logp = ref(feats[:1].expand(len(order), -1), states)
    probs = logp.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(order)), atol=1e-5, rtol=0)
    live = states[:, 5] == 0
    assert torch.all(probs[live][~mask[live]] == 0)
    # a finished answer "ends" again with probability 1
    assert torch.allclose(probs[~live, END], torch.ones(int((~live).sum())))


def test_prompt_features(prompts):
    f = prompt_features(prompts)
    assert f.shape == (len(prompts), 64) and f.dtype == torch.float32
    assert torch.equal(f, prompt_features([p["text"] for p in prompts]))
    assert torch.all(f >= 0) and torch.all(f.sum(1) > 0)
    assert not torch.equal(f[0], f[1])
    assert prompt_features(prompts, dim=16).shape == (len(prompts), 16)
    with pytest.raises(TypeError, match="single string"):
        prompt_features("What is the capital of France?")
    with pytest.raises(TypeError, match=r"prompts\[1\]"):
        prompt_features(["fine", 3])


# ------------------------------------------------------------------------------------------
# rendering and attributes
# ------------------------------------------------------------------------------------------


def test_render_is_deterministic_and_writes_the_prompts_sentences(prompts):
    seq = [OPENER, FILLER, RIGHT, DETAIL, FILLER, DETAIL, CLOSER, END]
    for p in prompts:
        text = render(p, seq)
        assert text == render(dict(p), list(seq))
        assert text.startswith(tuple(p["opener"]))
        assert text.endswith(tuple(p["closer"]))
        # the k-th detail is the topic's k-th detail, in order, and the third is not written
        i0, i1 = text.index(p["details"][0]), text.index(p["details"][1])
        assert i0 < i1 and p["details"][2] not in text
        assert sum(r in text for r in p["right"]) == 1
        assert not any(w in text for w in p["wrong"])
        assert sum(f in text for f in p["filler"]) >= 2
    assert len({render(p, seq) for p in prompts}) == len(prompts)


def test_render_uses_the_same_pattern_for_right_and_wrong(prompts):
    for p in prompts:
        right = render(p, [RIGHT, END])
        wrong = render(p, [WRONG, END])
        assert right in p["right"] and wrong in p["wrong"]
        assert p["right"].index(right) == p["wrong"].index(wrong)


def test_render_fillers_are_distinct_and_the_same_across_answers(prompts):
    p = prompts[0]
    five = render(p, [RIGHT] + [FILLER] * 5 + [END])
    used = [f for f in p["filler"] if f in five]
    assert len(used) == 5
    # the first filler of a long answer is the first filler of a short one
    one = render(p, [FILLER, RIGHT, END])
    assert one.replace(render(p, [RIGHT, END]), "").strip() in used


def test_render_rejects_bad_sequences(prompts):
    p = prompts[0]
    with pytest.raises(ValueError, match="not allowed"):
        render(p, [DETAIL, END])  # detail before the claim
    with pytest.raises(ValueError, match="not allowed"):
        render(p, [RIGHT, END, DETAIL])  # after the end
    with pytest.raises(ValueError, match="not allowed"):
        render(p, [RIGHT, WRONG, END])
    with pytest.raises(ValueError, match="end"):
        render(p, [OPENER, RIGHT, DETAIL])  # unfinished
    with pytest.raises(ValueError, match="end"):
        render(p, [])


def test_answer_attrs_and_gold_reward_agree_with_answer_gold_on_every_finished_state():
    order, *_ = _state_space()
    finished = [s for s in order if s[5]]
    fast = answer_gold(torch.tensor(finished))
    slow = torch.tensor([gold_reward(answer_attrs(s)) for s in finished])
    torch.testing.assert_close(fast, slow)


def test_answer_attrs_and_gold_on_sampled_answers(ref, feats):
    roll = sample(ref, feats, 32, torch.Generator().manual_seed(4))
    gold = answer_gold(roll.final)
    for s, g, seq in zip(roll.final.tolist(), gold.tolist(), roll.action_lists()):
        attrs = answer_attrs(s)
        assert attrs["correct"] == (RIGHT in seq)
        assert attrs["detail"] == seq.count(DETAIL) and attrs["padding"] == seq.count(FILLER)
        assert attrs["polite"] == (OPENER in seq or CLOSER in seq)
        assert g == pytest.approx(gold_reward(attrs))


def test_answer_attrs_rejects_an_answer_without_a_claim():
    with pytest.raises(ValueError, match="claim"):
        answer_attrs((1, 0, 0, 2, 0, 1))


# ------------------------------------------------------------------------------------------
# demonstrations and SFT
# ------------------------------------------------------------------------------------------


def _attrs(correct=True, detail=1, padding=0, polite=False, refuses=False):
    return {"correct": correct, "refuses": refuses, "detail": detail, "polite": polite,
            "padding": padding, "should_refuse": False}


def test_demonstration_none_for_refusals_and_overbudget_answers():
    rng = random.Random(0)
    assert demonstration(_attrs(correct=None, refuses=True), rng) is None
    assert demonstration(_attrs(correct=None), rng) is None
    assert demonstration(_attrs(detail=3, padding=3), rng) is None  # 1 + 3 + 3 > BODY_BUDGET
    assert demonstration(_attrs(detail=0, padding=BODY_BUDGET), rng) is None
    assert demonstration(_attrs(detail=2, padding=3), rng) is not None  # exactly the budget


@pytest.mark.parametrize("correct", [True, False])
@pytest.mark.parametrize("polite", [True, False])
def test_demonstration_is_a_valid_sequence_with_the_same_attributes(correct, polite, prompts):
    rng = random.Random(1)
    kinds = set()
    for detail in range(MAX_DETAIL + 1):
        for padding in range(BODY_BUDGET - detail):
            for _ in range(8):
                attrs = _attrs(correct=correct, detail=detail, padding=padding, polite=polite)
                seq = demonstration(attrs, rng)
                assert seq is not None
                final = _replay(seq)  # raises on a grammar violation
                assert final[5] == 1 and seq[-1] == END
                got = answer_attrs(final)
                for key in ("correct", "detail", "padding", "polite"):
                    assert got[key] == attrs[key], (key, seq)
                render(prompts[0], seq)
                kinds.add((OPENER in seq, CLOSER in seq, CURT in seq))
    if polite:  # opener, closer or both, never curt
        assert kinds == {(True, False, False), (False, True, False), (True, True, False)}
    else:  # curt half the time, never an opener or closer
        assert kinds == {(False, False, True), (False, False, False)}


def test_sft_sequences_keep_only_chat_answers_that_fit(world):
    ds = world.pairs("train", 80)
    prompts, seqs = sft_sequences(ds, seed=0)
    chat = [i for i, s in enumerate(ds["section"]) if s == "chat"]
    assert 0 < len(seqs) <= len(chat)
    allowed_prompts = [ds["prompt"][i] for i in chat]
    assert all(p in allowed_prompts for p in prompts)
    for seq in seqs:
        assert _replay(seq)[5] == 1
    assert sft_sequences(ds, seed=0) == (prompts, seqs)
    no_chat = {"prompt": ["x"], "section": ["safety"], "chosen_attrs": [_attrs()]}
    with pytest.raises(ValueError, match="no chat answer"):
        sft_sequences(no_chat)


def test_fit_sft_lowers_the_nll(demos, one_thread):
    prompts, seqs = demos
    prompts, seqs = prompts[:64], seqs[:64]
    feats = prompt_features(prompts)
    policy = AnswerPolicy(seed=7)
    history = fit_sft(policy, feats, seqs, epochs=6, batch_size=16, seed=0)
    assert len(history) == 6
    assert history[-1] < history[0] - 0.1
    # the NLL it reports is the teacher-forced NLL of the data under the trained policy (roughly:
    # the last epoch's is averaged over the updates)
    from rmcourse.policy import _teacher_forced
    data = _teacher_forced(feats, seqs)
    with torch.no_grad():
        nll = float(-sequence_logprobs(policy, feats, data).sum() / data.mask.sum())
    assert nll == pytest.approx(history[-1], abs=0.15)
    with pytest.raises(ValueError, match="prompts"):
        fit_sft(policy, feats[:3], seqs[:4])


def test_sft_policy_reproduces_the_demonstrations(ref, demos, one_thread):
    prompts, seqs = demos
    feats = prompt_features(prompts)
    policy = copy.deepcopy(ref)
    fit_sft(policy, feats, seqs, epochs=20, seed=1)
    stats = exact_stats(policy.eval(), feats)
    want = {"detail": np.mean([s.count(DETAIL) for s in seqs]),
            "filler": np.mean([s.count(FILLER) for s in seqs]),
            "right": np.mean([RIGHT in s for s in seqs]),
            "polite": np.mean([OPENER in s or CLOSER in s for s in seqs])}
    for key, value in want.items():
        assert float(stats[key].mean()) == pytest.approx(value, abs=0.1), key


# ------------------------------------------------------------------------------------------
# exact statistics
# ------------------------------------------------------------------------------------------


def _brute_force(policy, ref, feat):
    """Sum over every complete answer (all 1344 paths) of its probability times its statistics."""
    order, index, _, _ = _state_space()
    states = torch.tensor(order)
    with torch.no_grad():
        lp = policy(feat[None].expand(len(order), -1), states)
        lq = ref(feat[None].expand(len(order), -1), states)
    out = {"mass": 0.0, "kl": 0.0, "gold": 0.0, "detail": 0.0, "filler": 0.0, "right": 0.0,
           "polite": 0.0, "sentences": 0.0, "paths": 0}

    def walk(state, logp, logq, n_tokens):
        if state[5]:
            p = float(np.exp(logp))
            attrs = answer_attrs(state)
            out["paths"] += 1
            out["mass"] += p
            out["kl"] += p * (logp - logq)
            out["gold"] += p * gold_reward(attrs)
            out["detail"] += p * attrs["detail"]
            out["filler"] += p * attrs["padding"]
            out["right"] += p * attrs["correct"]
            out["polite"] += p * attrs["polite"]
            out["sentences"] += p * (n_tokens - 1)  # every unit but "end" is a sentence
            return
        i = index[state]
        for a in _allowed(state):
            walk(_step(state, a), logp + float(lp[i, a]), logq + float(lq[i, a]), n_tokens + 1)

    walk(START, 0.0, 0.0, 0)
    return out


def test_exact_stats_match_a_brute_force_sum_over_every_answer(ref, other, feats):
    stats = exact_stats(other, feats[:2], ref)
    for j in range(2):
        bf = _brute_force(other, ref, feats[j])
        assert bf["paths"] == 1344
        assert bf["mass"] == pytest.approx(1.0, abs=1e-5)
        for key in ("kl", "gold", "detail", "filler", "right", "polite", "sentences"):
            assert float(stats[key][j]) == pytest.approx(bf[key], abs=1e-4), key
        assert bf["kl"] > 0.05  # the two policies do differ


def test_exact_stats_ranges_and_self_kl(ref, feats):
    stats = exact_stats(ref, feats, ref)
    torch.testing.assert_close(stats["kl"], torch.zeros(feats.shape[0]), atol=1e-6, rtol=0)
    no_ref = exact_stats(ref, feats)
    assert torch.all(no_ref["kl"] == 0)
    for key in ("gold", "detail", "filler", "right", "polite", "sentences"):
        assert stats[key].shape == (feats.shape[0],)
        torch.testing.assert_close(stats[key], no_ref[key])
    assert torch.all((stats["detail"] >= 0) & (stats["detail"] <= MAX_DETAIL))
    assert torch.all((stats["filler"] >= 0) & (stats["filler"] <= BODY_BUDGET - 1))
    for key in ("right", "polite"):
        assert torch.all((stats[key] >= 0) & (stats[key] <= 1))
    assert torch.all((stats["sentences"] >= 1) & (stats["sentences"] <= MAX_STEPS - 1))
    lo, hi = -2.5, 2.5 + 0.5 + MAX_DETAIL
    assert torch.all((stats["gold"] >= lo) & (stats["gold"] <= hi))


def test_exact_stats_agree_with_monte_carlo(ref, other, feats, one_thread):
    k = 1500
    roll = sample(other, feats, k, torch.Generator().manual_seed(11))
    with torch.no_grad():
        ref_lp = sequence_logprobs(ref, feats, roll)
    k1 = (roll.logprobs - ref_lp).sum(1).view(-1, k).double()
    gold = answer_gold(roll.final).view(-1, k).double()
    detail = roll.final[:, 2].view(-1, k).double()
    n_sent = (roll.mask.sum(1) - 1).view(-1, k).double()
    stats = exact_stats(other, feats, ref)
    for name, mc in (("kl", k1), ("gold", gold), ("detail", detail), ("sentences", n_sent)):
        # pooled over prompts: the mean of per-prompt means, with its standard error
        est = mc.mean(1)
        se = (mc.var(1) / k).sum().sqrt() / mc.shape[0]
        exact = stats[name].double().mean()
        assert abs(float(est.mean() - exact)) < 4 * float(se) + 1e-6, name
        # and prompt by prompt
        se_p = (mc.var(1) / k).sqrt()
        assert torch.all((est - stats[name].double()).abs() < 5 * se_p + 1e-6), name
