"""Write notebooks/09_policy_against_a_reward_model.ipynb from the cells below (outputs come from
`tools/execute_notebooks.py`). Kept so the chapter's source reads as one file in review."""
from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
cells: list = []


def md(text: str) -> None:
    cells.append(nbformat.v4.new_markdown_cell(text.strip("\n")))


def code(text: str) -> None:
    cells.append(nbformat.v4.new_code_cell(text.strip("\n")))


md(r"""
# 09 — The reward model at work: a policy trained against it, read against gold

Every chapter so far trained or judged a reward model (RM). This one does what an RM is *for* in
RLHF (the seed note's first goal: 深入理解奖励模型在RLHF中的核心作用, understand the RM's core
role in RLHF): a **policy is optimised against it**. You will build

1. a small **autoregressive policy** that writes answers to the preference world's chat prompts one
   sentence at a time, with exact per-token log-probabilities, and its **reference policy**,
   fitted by maximum likelihood (SFT) to the world's chosen answers;
2. a **proxy reward**: chapter 06's reward head, trained on 2,000 world pairs (never the gold);
3. three ways to optimise against the proxy, on the same prompts: **best-of-n**,
   **rejection-sampling fine-tuning** (Llama 2, RAFT) and **RL** with InstructGPT's KL-penalised
   reward, using RLOO advantages and PPO's clipped objective;
4. Gao et al.'s over-optimisation picture for all three in one figure (proxy and gold reward against
   d = sqrt(KL)), with their functional forms fitted, and the **exact** KL beside the two
   estimators (k1, k3) practitioners log;
5. **reward hacking made visible**: what the answers are made of at the start, at the gold peak
   and at the end.

Why this world: its gold reward tells the truth at every step. A real RLHF run can only watch the
proxy rise and guess when it stopped meaning anything; here we can see it.

**Which mechanism you are watching.** Before building the chapter we probed what the proxy pays
for (section 3 repeats the probe): it pays more per *filler* sentence ("This is a question many
people ask.", gold weight 0) than per *detail* sentence (gold weight 1), and it can tell a right
claim from a wrong one on familiar topics. The policy writes at most six body sentences (a length
budget, as real generation has), so a policy that climbs the proxy first gets its claims right and
then **trades detail for filler**. Gold rises, then falls. Chapter [09b](09b_reward_hacking_mitigations.ipynb)
asks what stops it.
""")

code(r"""
import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt

from rmcourse.bootstrap import paired_difference_ci
from rmcourse.device import scaled
from rmcourse.overoptimization import (best_of_n_curve, expected_best_of_n, fit_gao_bon, fit_gao_rl,
                                       gao_bon_curve, gao_rl_curve, peak_d, peak_d_rl)
from rmcourse.policy import (ACTIONS, BODY_BUDGET, answer_attrs, exact_stats, final_state, n_states,
                             prompt_features, render, sample, sft_reference, sft_sequences)
from rmcourse.proxies import head_proxy, model_proxy, pair_accuracy
from rmcourse.rl import best_of_n_pool, rejection_sampling, train_rl
from rmcourse.world import PreferenceWorld, gold_reward

pd.set_option("display.width", 140)
world = PreferenceWorld(seed=0)
prompts = world.prompts("pool", 320)          # chat prompts of the world's best-of-n split
rl_prompts, eval_prompts = prompts[:256], prompts[256:]
print(f"{len(rl_prompts)} prompts to optimise on, {len(eval_prompts)} held-out prompts to measure on")
print(eval_prompts[0]["text"])
""")

md(r"""
## 1. A policy that writes world answers, one sentence at a time

The policy's vocabulary is eight **sentence units**: `end, opener, curt, right, wrong, detail,
filler, closer`. An action sequence renders to a real world answer with the world's own sentences
(`rmcourse.policy.render`): `right`/`wrong` is the topic's right or subtly wrong claim in the same
sentence pattern, the k-th `detail` is the topic's k-th detail sentence, the k-th `filler` one of
the world's filler sentences. A small grammar keeps answers well formed: a style sentence
(`opener` or `curt`) only first, exactly one claim, details after the claim, a `closer` only last,
and at most **six body sentences** (claim + details + filler).

So every sample has exact hidden attributes, hence an exact gold reward
(gold = detail + 0.5·polite ± 2.5 for a right/wrong claim + 0·filler), and an exact probability.
""")

code(r"""
example = ["opener", "right", "detail", "filler", "detail", "closer", "end"]
wrong = ["opener", "wrong", "detail", "filler", "detail", "closer", "end"]
for units in (example, wrong):
    ids = [ACTIONS.index(u) for u in units]
    attrs = answer_attrs(final_state(ids))
    print(" ".join(units))
    print("  ->", render(eval_prompts[0], ids))
    print(f"  attributes {attrs}, gold {gold_reward(attrs)}\n")
assert gold_reward(answer_attrs(final_state([ACTIONS.index(u) for u in example]))) == 2 + 0.5 + 2.5
assert gold_reward(answer_attrs(final_state([ACTIONS.index(u) for u in wrong]))) == 2 + 0.5 - 2.5
print(f"the grammar reaches {n_states()} states; a body holds at most {BODY_BUDGET} sentences")
""")

md(r"""
The policy itself (`AnswerPolicy`) is a two-layer network. It reads the prompt's hashed words and
the answer's **state** so far (which style sentence, which claim, how many details and fillers,
whether it closed) and outputs a distribution over the units the grammar allows next. Because the
state is all it reads, the probability of an answer factorises over the 450 states above, and
`exact_stats` computes by dynamic programming what RL libraries can only estimate from samples:
the exact KL(π ‖ π_ref) between two policies and the exact expected gold reward.

## 2. The reference policy: supervised fine-tuning

InstructGPT starts RL from an SFT model fitted to demonstrations. Ours are the *chosen* answers of
the chat rows of 4,000 world training pairs, turned into unit sequences laid out as the world
renders them (answers whose body does not fit the six-sentence budget are left out). The fit is
plain maximum likelihood: minimise the negative log-likelihood of each demonstrated unit given the
units before it.
""")

code(r"""
ref, nll, n_demos = sft_reference(world, n_pairs=4000, epochs=20)
demo_prompts, demos = sft_sequences(world.pairs("train", 4000))
demo_states = [answer_attrs(final_state(s)) for s in demos]
ref_stats = exact_stats(ref, prompt_features(eval_prompts))
table = pd.DataFrame({
    "demonstrations (mean)": [np.mean([a["detail"] for a in demo_states]), np.mean([a["padding"] for a in demo_states]),
                              np.mean([a["correct"] for a in demo_states]), np.mean([a["polite"] for a in demo_states]),
                              np.mean([gold_reward(a) for a in demo_states])],
    "reference policy (exact, held-out prompts)": [float(ref_stats[k].mean()) for k in ("detail", "filler", "right", "polite", "gold")],
}, index=["detail sentences", "filler sentences", "right claim", "polite", "gold reward"])
print(f"{n_demos} demonstrations; NLL per unit {nll[0]:.3f} after epoch 1 -> {nll[-1]:.3f} after epoch {len(nll)}")
print(table.round(3))
fig, ax = plt.subplots(figsize=(4.5, 2.6))
ax.plot(range(1, len(nll) + 1), nll, marker="o", ms=3)
ax.set(xlabel="epoch", ylabel="NLL per unit", title="SFT of the reference policy")
plt.tight_layout(); plt.show()
assert nll[-1] < nll[0]
gap = table.iloc[:, 1] - table.iloc[:, 0]
assert gap[["right claim", "polite", "gold reward"]].abs().max() < 0.06
assert -0.4 < gap["detail sentences"] < -0.1 and 0.1 < gap["filler sentences"] < 0.4
gen = torch.Generator().manual_seed(0)
roll = sample(ref, prompt_features(eval_prompts[:3]), 1, gen)
for i, seq in enumerate(roll.action_lists()):
    print(f"\n[{' '.join(ACTIONS[a] for a in seq)}]\n{render(eval_prompts[i], seq)}")
""")

md(r"""
The reference policy is close to its data: its right-claim rate, politeness and mean gold reward
are within 0.06 of the demonstrations'. It writes somewhat fewer details and more filler than they do
(about 1.2 and 2.3 per answer against 1.5 and 2.1): twenty epochs of a small network stop short of
the maximum-likelihood fit (the NLL is still falling), and the held-out prompts are not the
demonstrations' prompts. It is the π_ref every KL below is measured against.

## 3. The proxy: a reward model that the policy will optimise

The proxy is chapter 06's reward head on hashed word features, trained on 2,000 noisy world pairs
(`rmcourse.proxies.head_proxy`). It never sees the gold reward. First its pairwise accuracy on
clean test pairs, beside the rule "the longer answer wins" that chapter 03 taught us to beat:
""")

code(r"""
proxy = head_proxy(world.pairs("train", 2000))
test = world.pairs("test", 400)
accuracy = pair_accuracy(proxy, test)
longer = float(np.mean(np.array(test["chosen_words"]) > np.array(test["rejected_words"])))
chat = test.filter(lambda r: r["section"] in ("chat", "chat_hard"))
chat_accuracy = pair_accuracy(proxy, chat)
print(f"proxy pairwise accuracy on {len(test)} test pairs: {accuracy:.3f} (longer answer wins: {longer:.3f})")
print(f"on the {len(chat)} chat and chat_hard pairs (what the policy writes): {chat_accuracy:.3f}")
assert accuracy > longer
""")

md(r"""
Now the probe that tells us what the policy will do. For each held-out prompt we render answers
with a right claim, d detail sentences and f filler sentences (d + f ≤ 5, so every answer fits the
budget) and average the proxy's score. The gold reward of each cell is 2.5 + d: filler is worth
nothing.
""")

code(r"""
R, W, D, FL, E, O, C, CU = (ACTIONS.index(u) for u in ("right", "wrong", "detail", "filler", "end", "opener", "closer", "curt"))
texts = lambda seqs: ([p["text"] for seq in seqs for p in eval_prompts],
                      [render(p, seq) for seq in seqs for p in eval_prompts])

def probe(reward):
    grid = {(d, f): [R] + [D] * d + [FL] * f + [E] for d in range(4) for f in range(6 - 1 - d + 1)}
    scores = reward(*texts(list(grid.values()))).reshape(len(grid), len(eval_prompts)).mean(1)
    return pd.Series(scores, index=pd.MultiIndex.from_tuples(grid, names=["detail", "filler"])).unstack()

grid = probe(proxy)
per_filler = np.nanmean(np.diff(grid.to_numpy(), axis=1))
per_detail = np.nanmean(np.diff(grid.to_numpy(), axis=0))
claims = proxy(*texts([[R, D, E], [W, D, E]])).reshape(2, -1).mean(1)
print("proxy score by detail (rows) and filler (columns) sentences, right claim:")
print(grid.round(2))
print(f"\nper extra filler sentence: {per_filler:+.2f}; per extra detail sentence: {per_detail:+.2f}")
print(f"right claim {claims[0]:.2f} vs wrong claim {claims[1]:.2f} (one detail, no filler)")
best = grid.stack().idxmax()
print(f"the proxy's favourite body: {best[0]} detail + {best[1]} filler sentences (gold {2.5 + best[0]})")
assert per_filler > per_detail > 0 and claims[0] > claims[1]
assert best == (0, 5)
""")

md(r"""
Every filler sentence is worth more to the proxy than a detail sentence, and the best body it
can be offered is a right claim padded with five fillers and **no detail at all**. Gold would
put three details there. The proxy learnt the training split's shortcut (better answers carry
more filler, chapter 02) and, with the budget, the shortcut now competes with substance. It also
learnt to tell right from wrong claims on these familiar topics: optimising it should first help.

Is this an artefact of a bag-of-words head? Chapter 03's fine-tuned MiniLM reward model
(`course_reward_model()`, a real pretrained encoder) gets the same probe on 16 prompts:
""")

code(r"""
from rmcourse.course_models import course_reward_model

minilm = model_proxy(course_reward_model(progress=False))
few = eval_prompts[:16]
cells = {(d, f): [R] + [D] * d + [FL] * f + [E] for d in range(4) for f in (0, 5 - d)}
scores = minilm([p["text"] for s in cells.values() for p in few],
                [render(p, s) for s in cells.values() for p in few]).reshape(len(cells), -1).mean(1)
m = dict(zip(cells, scores))
m_filler = np.mean([(m[(d, 5 - d)] - m[(d, 0)]) / (5 - d) for d in range(4)])
m_detail = np.mean([m[(d + 1, 0)] - m[(d, 0)] for d in range(3)])
print(f"MiniLM RM: per filler sentence {m_filler:+.2f}, per detail sentence {m_detail:+.2f}; "
      f"3 detail + 2 filler {m[(3, 2)]:+.2f} vs 0 detail + 5 filler {m[(0, 5)]:+.2f}")
assert m_filler > m_detail and m[(0, 5)] > m[(3, 2)]
""")

md(r"""
The fine-tuned encoder pays more for filler than for detail too, and it also prefers five fillers
to three details and two fillers: under optimisation it invites the same trade (it is too slow to sit inside the CPU loops below, so the chapter
optimises the head).

## 4. Best-of-n: optimisation without training

Chapter 06's best-of-n, now over the reference policy's own samples: draw n answers, keep the one
the proxy likes best. Gao et al. (2023) put it on the x-axis with KL_bon = log n − (n − 1)/n, an
**upper bound** on the true KL (Beirami et al. 2024), and d = sqrt(KL). We draw a pool of 64 answers
per held-out prompt and use the unbiased estimator of every n ≤ 64 from it.
""")

code(r"""
POOL = scaled(64, 256)
pool = best_of_n_pool(ref, eval_prompts, proxy, pool_size=POOL, seed=1)
ns = [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256) if n <= POOL]
bon = best_of_n_curve(pool["proxy"], pool["gold"], ns,
                      extras={"detail": pool["detail"], "filler": pool["filler"]})
print(bon.round(3).to_string(index=False))
""")

md(r"""
## 5. Rejection-sampling fine-tuning

Best-of-n costs n samples per answer forever. Llama 2 and RAFT (Dong et al. 2023) distil it
instead: sample n answers per training prompt, keep the proxy's favourite, fine-tune the policy on
the kept answers by maximum likelihood, and repeat from the new policy. Each round moves the policy
further; we measure its exact KL to the reference and exact gold on the held-out prompts.
""")

code(r"""
rsft = rejection_sampling(ref, rl_prompts, proxy, rounds=scaled(5, 8), n=8, eval_prompts=eval_prompts,
                          k_eval=8, seed=0)
print(rsft.history[["step", "kl", "d", "gold", "proxy", "detail", "filler", "right", "polite"]].round(3).to_string(index=False))
""")

md(r"""
## 6. RL against the proxy: RLOO with the KL-penalised reward and PPO's clip

InstructGPT (Ouyang et al. 2022) gives every token the reward −β·log(π/π_ref) and adds the RM's
score on the last token; summed over an answer that is score − β·k1 (`kl_penalised_rewards`).
We use **RLOO** (Ahmadian et al. 2024): four answers per prompt, each answer's baseline is the mean
return of the other three, so no value network is needed: like Ahmadian et al., it treats the whole
answer as one action with one return, score − β·k1, and lets every token share that answer's
advantage. Why we chose it over PPO with a value head: the RM scores only whole answers, four
samples per prompt cost nothing here, and Ahmadian et al. report RLOO matching or beating PPO for
RLHF with fewer moving parts. The policy takes two steps of **PPO's clipped objective**
(Schulman et al. 2017) on each batch. TRL's RLOO trainer computes the same clipped loss and notes
that with one epoch and one mini-batch it is plain REINFORCE with the leave-one-out baseline; the
clip matters from the second step on, when the policy being updated is no longer the one that sampled. This run has **β = 0**: it
shows what the proxy does when nothing holds the policy back (chapter 09b sweeps β).

At each evaluation (every 2 steps) we record the exact KL and expected gold on the held-out prompts,
the proxy's mean score and the k1 and k3 estimates from 8 sampled answers per prompt.
""")

code(r"""
STEPS = scaled(40, 120)
rl = train_rl(ref, rl_prompts, proxy, beta=0.0, steps=STEPS, eval_every=2, lr=1e-3,
              eval_prompts=eval_prompts, k_eval=8, seed=0, progress=True)
h = rl.history
peak = int(h.gold.idxmax())
print(h.iloc[::4][["step", "kl", "d", "gold", "proxy", "detail", "filler", "right", "polite"]].round(3).to_string(index=False))
print(f"\ngold peaks at step {h.step[peak]} (KL {h.kl[peak]:.2f}, gold {h.gold[peak]:.2f}); "
      f"at step {h.step.iloc[-1]}: KL {h.kl.iloc[-1]:.2f}, gold {h.gold.iloc[-1]:.2f}, proxy {h.proxy.iloc[-1]:.2f}")
start_gold = h.gold[0]
assert h.gold[peak] > start_gold + 0.5, "gold first rises"
assert h.gold.iloc[-1] < start_gold - 0.3, "and ends below the reference policy's"
assert h.proxy.iloc[-1] > h.proxy[peak] + 0.2, "while the proxy keeps rising"
""")

md(r"""
## 7. Exact KL beside the k1 and k3 estimators

A real trainer cannot sum over every answer, so it logs an estimate from its samples. Two are common
(Schulman, "Approximating KL divergence"): per answer, k1 = Σ log(π/π_ref) and
k3 = Σ [(π_ref/π − 1) − log(π_ref/π)], each summed over the answer's tokens. Both are unbiased for
KL(π ‖ π_ref) when the answers are sampled from π; k3 is never negative. Here we can put them beside
the exact value.
""")

code(r"""
n = int(h.n_sampled[0])
kl_table = h[["step", "kl", "k1", "k3", "k1_std", "k3_std"]].copy()
kl_table["k1 z"] = (h.k1 - h.kl) / (h.k1_std / np.sqrt(n))
kl_table["k3 z"] = (h.k3 - h.kl) / (h.k3_std / np.sqrt(n))
print(f"{n} sampled answers per evaluation; z = (estimate - exact) / standard error")
print(kl_table.iloc[1::3].round(3).to_string(index=False))
early, late = h.iloc[1], h.iloc[-1]
print(f"\nfirst evaluation after the start: per-answer std k1 {early.k1_std:.2f}, k3 {early.k3_std:.2f}; "
      f"last: k1 {late.k1_std:.2f}, k3 {late.k3_std:.2f}")
z = kl_table[["k1 z", "k3 z"]].iloc[1:]
print(f"mean z over the run: k1 {z['k1 z'].mean():+.2f}, k3 {z['k3 z'].mean():+.2f}")
print(f"largest |z|: k1 {z['k1 z'].abs().max():.1f}, k3 {z['k3 z'].abs().max():.1f} (step {int(h.step[z['k3 z'].abs().idxmax()])})")
assert abs(z["k1 z"].mean()) < 1.0 and z["k1 z"].abs().max() < 4.5, "k1 stays within a few standard errors"
assert early.k3_std < early.k1_std and late.k3_std > late.k1_std
assert z["k3 z"].abs().max() > 4.5, "k3's heavy tail: its own standard error misleads late in the run"
""")

md(r"""
k1 stays within a few standard errors of the exact KL at every evaluation. k3's noise depends on
the distance: close to the reference it is far less noisy per answer than k1 (where π ≈ π_ref each
token's term is second order in the difference); far from it, k3's term π_ref/π explodes on the
occasional answer the policy now finds unlikely but the reference liked. Then its spread exceeds
k1's and its sample standard deviation itself misleads: at one evaluation the k3 mean sits many
*estimated* standard errors from the truth. Both estimators are unbiased; a KL logged from a few
samples late in a run can still be far off. The exact value is a luxury of this toy.

## 8. Gao et al.'s picture, for RL this time

Gao, Schulman & Hilton (2023) fit gold(d) − gold(0) = d(α − βd) for best-of-n and
d(α − β·log d) for RL, d = sqrt(KL). Here are all three methods on the same held-out prompts, each
form fitted to its own points (best-of-n's d uses the KL bound, so its points sit to the right of
where the true KL would put them).
""")

code(r"""
gold0 = float(h.gold[0])
a_bon, b_bon = fit_gao_bon(bon.d, bon.gold_mean)
a_rl, b_rl = fit_gao_rl(h.d, h.gold, gold0)
r2 = lambda y, f: 1 - np.sum((y - f) ** 2) / np.sum((y - np.mean(y)) ** 2)
r2_bon = r2(bon.gold_mean, gao_bon_curve(bon.d, a_bon, b_bon, bon.gold_mean[0]))
r2_rl = r2(h.gold, gao_rl_curve(h.d, a_rl, b_rl, gold0))
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
grid_d = np.linspace(0, max(h.d.max(), bon.d.max()) * 1.02, 200)
for ax, col, label in ((axes[0], "gold", "gold reward"), (axes[1], "proxy", "proxy reward")):
    ax.plot(bon.d, bon[f"{col}_mean"], "o", color="C0", label="best-of-n (d from the KL bound)")
    ax.plot(rsft.history.d, rsft.history[col], "s-", color="C2", label="rejection-sampling FT (rounds)")
    ax.plot(h.d, h[col], ".-", color="C3", label="RL, β = 0 (RLOO + PPO clip)")
    ax.set(xlabel="d = sqrt(KL to the reference)", ylabel=label)
axes[0].plot(grid_d[grid_d <= bon.d.max()], gao_bon_curve(grid_d[grid_d <= bon.d.max()], a_bon, b_bon, bon.gold_mean[0]),
             "--", color="C0", label=f"fit d(α − βd), R² {r2_bon:.2f}")
axes[0].plot(grid_d, gao_rl_curve(grid_d, a_rl, b_rl, gold0), "--", color="C3", label=f"fit d(α − β log d), R² {r2_rl:.2f}")
axes[0].axhline(gold0, color="grey", lw=0.8)
axes[0].legend(fontsize=8)
axes[0].set_title("gold peaks, then falls"); axes[1].set_title("the proxy only rises")
plt.tight_layout(); plt.show()
print(f"best-of-n fit: alpha {a_bon:.2f}, beta {b_bon:.2f}, R² {r2_bon:.3f}, peak at d {peak_d(a_bon, b_bon):.2f}")
print(f"RL fit: alpha {a_rl:.2f}, beta {b_rl:.2f}, R² {r2_rl:.3f}, peak at d {peak_d_rl(a_rl, b_rl):.2f} "
      f"(observed: d {h.d[peak]:.2f})")
assert r2_rl > 0.9 and r2_bon > 0.9 and b_rl > 0 and b_bon > 0, "both forms fit, each with a peak"
assert peak_d_rl(a_rl, b_rl) < h.d[peak], "the RL form puts the peak left of the observed one"
""")

md(r"""
Both forms fit closely, and both curves have a peak. The RL form puts its peak left of the one
observed (printed above): a good R² over the whole curve does not pin down where the top is, so read
a fitted peak as a rough location.

How far does each method get on the truth? The highest gold each reached, the KL it needed, and
paired 95% bootstrap intervals over the 64 held-out prompts for the difference to RL's peak (same
prompts; best-of-n's per-prompt value is its expected gold at that n):
""")

code(r"""
rs_peak = int(rsft.history.gold.idxmax())
bon_peak = int(bon.gold_mean.idxmax())
per_rl = rl.per_prompt[int(h.step[peak])]["gold"]
per_rs = rsft.per_prompt[int(rsft.history.step[rs_peak])]["gold"]
per_bon = expected_best_of_n(pool["proxy"], pool["gold"], int(bon.n[bon_peak]))
rows = {"RL (β = 0), best checkpoint": (h.gold[peak], h.kl[peak], None),
        f"rejection sampling, round {rsft.history.step[rs_peak]}": (rsft.history.gold[rs_peak], rsft.history.kl[rs_peak],
                                                                 paired_difference_ci(per_rs, per_rl)),
        f"best-of-{int(bon.n[bon_peak])}": (bon.gold_mean[bon_peak], bon.kl[bon_peak], paired_difference_ci(per_bon, per_rl))}
for name, (g, kl, ci) in rows.items():
    extra = "" if ci is None else f"  vs RL's peak {ci.estimate:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]"
    print(f"{name:36s} gold {g:.2f} at KL {kl:.2f}{extra}")
ci_rs, ci_bon = rows[list(rows)[1]][2], rows[list(rows)[2]][2]
# the control for "rejection sampling is better": RL at the KL rejection sampling used
near = int((h.kl - rsft.history.kl[rs_peak]).abs().idxmin())
ci_same_kl = paired_difference_ci(per_rs, rl.per_prompt[int(h.step[near])]["gold"])
print(f"\nRL's checkpoint nearest rejection sampling's KL: step {h.step[near]}, KL {h.kl[near]:.2f}, gold {h.gold[near]:.2f}; "
      f"rejection sampling minus RL {ci_same_kl.estimate:+.2f} [{ci_same_kl.low:+.2f}, {ci_same_kl.high:+.2f}]")
assert ci_rs.low > 0 and ci_same_kl.low > 0, "rejection sampling beats RL's peak and RL at the same KL"
assert ci_bon.low < 0 < ci_bon.high, "best-of-n's peak vs RL's: we cannot tell"
assert rsft.history.kl[rs_peak] > h.kl[peak]
""")

md(r"""
Rejection sampling reached a higher gold peak than RL, by an interval that excludes 0, though it
needed more KL to get there; RL's checkpoint nearest that KL is worse too (interval printed above). Best-of-n's peak and
RL's we cannot tell apart on 64 prompts, and best-of-n's x-value is only an upper bound on its KL.
(Gao et al. found best-of-n more KL-efficient than RL in their setting.) One plausible reason, read
off the table of section 5: rejection sampling only ever imitates answers the current policy
already writes and fits them by maximum likelihood, so its moves are small and conservative, while
RL with β = 0 follows the proxy's gradient, which points at filler from the first step. These are
one seed and one proxy; chapter 09b repeats runs over seeds.

## 9. Reward hacking, made visible

What are the answers made of as RL proceeds? The exact expected composition of the policy's
answers on the held-out prompts, and samples for the first held-out prompt at the start, at the
gold peak and at the end:
""")

code(r"""
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for col, label in (("detail", "detail sentences"), ("filler", "filler sentences"), ("sentences", "sentences in all")):
    axes[0].plot(h.step, h[col], label=label)
axes[0].axvline(h.step[peak], color="grey", ls=":", label="gold peak")
axes[0].set(xlabel="RL step", ylabel="expected count per answer"); axes[0].legend(fontsize=8)
for col, label in (("right", "P(right claim)"), ("polite", "P(polite)")):
    axes[1].plot(h.step, h[col], label=label)
axes[1].plot(h.step, (h.gold - h.gold.min()) / (h.gold.max() - h.gold.min()), "k--", label="gold (rescaled to 0..1)")
axes[1].axvline(h.step[peak], color="grey", ls=":")
axes[1].set(xlabel="RL step", ylabel="probability"); axes[1].legend(fontsize=8)
plt.tight_layout(); plt.show()
print(f"prompt: {eval_prompts[0]['text']}")
for step, when in ((0, "start"), (int(h.step[peak]), "gold peak"), (int(h.step.iloc[-1]), "end")):
    print(f"\n--- {when} (step {step}) ---")
    for s in rl.samples[step][:2]:
        print(f"[gold {s['gold']:+.1f}, proxy {s['proxy']:+.2f}] {s['answer']}")
first, top, last = h.iloc[0], h.iloc[peak], h.iloc[-1]
print(f"\ndetail {first.detail:.2f} -> {top.detail:.2f} -> {last.detail:.2f}; filler {first.filler:.2f} -> "
      f"{top.filler:.2f} -> {last.filler:.2f}; right {first.right:.2f} -> {top.right:.2f} -> {last.right:.2f}; "
      f"polite {first.polite:.2f} -> {top.polite:.2f} -> {last.polite:.2f}")
assert top.right > first.right + 0.1 and abs(top.detail - first.detail) < 0.3, "the rise: claims get right"
assert last.detail < 0.1 and last.filler > 4.8, "the fall: filler crowds out detail"
assert last.polite < 0.1 and all(s["answer"].startswith("You could have searched") for s in rl.samples[int(h.step.iloc[-1])][:2])
""")

md(r"""
The rise and the fall have different causes, and the plot shows both. Up to the gold peak the
policy mostly fixes its **claims** (the proxy can tell right from wrong on familiar topics) while
keeping its detail. After it, the proxy's preference for **filler** takes over: under the
six-sentence budget every extra filler displaces a detail sentence, each worth one gold point, and
the policy ends writing a right claim and five fillers, exactly the proxy's favourite body from
section 3. It also trades polite openers and closers for the curt "You could have searched for this.", half
a gold point each time. The proxy score kept rising: watching it alone, nothing went wrong.

## Summary

- A policy over sentence units is a real autoregressive policy (per-token log-probabilities, SFT
  by maximum likelihood, sampling), small enough that KL and expected gold are **exact**.
- Optimising a learned RM first helps (the claims get right) and then hurts: gold peaked and fell
  below the reference policy's while the proxy kept rising. The mechanism here is a **length
  budget plus a spurious feature**: filler the RM overvalues displaces detail that gold values.
- Gao et al.'s functional forms describe the curves (R² above 0.9). With β = 0 RL overshot its
  peak; rejection sampling reached a higher gold peak than RL (at more KL), best-of-n one we could
  not tell apart from RL's.
- k1 and k3 are both unbiased for the exact KL; k3 is the quieter estimate near the reference and
  the heavy-tailed one far from it.

**Exercises:** [exercises/09_policy_against_a_reward_model.ipynb](../exercises/09_policy_against_a_reward_model.ipynb)
(the per-token KL-penalised reward, the RLOO advantage, PPO's clipped loss, k1 and k3 against the
exact KL, a gold-free early warning of hacking); worked solutions in
[solutions/](../solutions/09_policy_against_a_reward_model.ipynb).

**Next:** [09b — what stops reward hacking](09b_reward_hacking_mitigations.ipynb): the KL penalty's
β, more preference data, ensembles, a length-decorrelated head, whitening and clipping, and
iterated RLHF, each measured against gold with seeds.
""")

md(r"""
## Sources

- Ouyang et al. 2022, *Training language models to follow instructions with human feedback*
  (InstructGPT), arXiv 2203.02155: the per-token KL penalty and the RM's score on the last token.
- Stiennon et al. 2020, *Learning to summarize from human feedback*, arXiv 2009.01325.
- Gao, Schulman & Hilton 2023, *Scaling Laws for Reward Model Overoptimization*, arXiv 2210.10760:
  d = sqrt(KL), the best-of-n and RL functional forms.
- Beirami et al. 2024, *Theoretical guarantees on the best-of-n alignment policy*, arXiv 2401.01879.
- Ahmadian et al. 2024, *Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
  Human Feedback in LLMs* (RLOO), arXiv 2402.14740; Kool et al. 2019, *Buy 4 REINFORCE samples, get a
  baseline for free!*.
- Schulman et al. 2017, *Proximal Policy Optimization Algorithms*, arXiv 1707.06347.
- Schulman 2020, *Approximating KL divergence*, http://joschu.net/blog/kl-approx.html (k1, k3).
- Touvron et al. 2023, *Llama 2*, arXiv 2307.09288 (rejection-sampling fine-tuning); Dong et al. 2023,
  *RAFT: Reward rAnked FineTuning*, arXiv 2304.06767.
- TRL (github.com/huggingface/trl): RLOOTrainer, PPOTrainer naming.
""")

nb = nbformat.v4.new_notebook()
nb.cells = cells
nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
nbformat.write(nb, ROOT / "notebooks" / "09_policy_against_a_reward_model.ipynb")
print("wrote notebooks/09_policy_against_a_reward_model.ipynb")
