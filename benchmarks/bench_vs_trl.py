"""rmcourse's reward-model trainer against TRL's RewardTrainer: same model, pairs and settings.

    pip install -c constraints.txt -r benchmarks/requirements.txt   # trl, optional
    python benchmarks/bench_vs_trl.py --data world                  # preference-world pairs
    python benchmarks/bench_vs_trl.py --data dialogue               # multi-turn HH-style dialogues
    python benchmarks/bench_vs_trl.py                               # both, one table each
    python benchmarks/bench_vs_trl.py --backbone smollm2 --data dialogue --threads 1 \
        --n-train 8 --n-test 8 --batch-size 4 --seeds 0 \
        --trainers rmcourse rmcourse-no-prefix-sharing trl-defaults trl-tuned   # the decoder row

Rows (3 seeds each by default; seed = initial head weights and data order, the same for all
trainers):
- `rmcourse`: `rmcourse.trainer.train_reward_model` with its defaults, as `python -m
  rmcourse.train` runs it (`RMCOURSE_DEFAULTS`): dropout off, bf16 autocast where the device has
  bf16 units, random batches whose rows run through the model in length-sorted chunks on a CPU
  (`forward_chunk_size="auto"`), every layer trained; with a decoder backbone (`--backbone
  smollm2`) each pair packed in one row, its prompt computed once (`prefix_sharing="auto"`).
- `trl-defaults` (the headline): TRL 1.16 `RewardTrainer` at its defaults, as a new user gets
  them: `bf16=True`, `gradient_checkpointing=True`, `disable_dropout=True`.
- `trl-tuned`: TRL with `bf16=False, gradient_checkpointing=False` (float32, no recomputation).
- Ablations on demand (`--trainers`), each changing one thing of the `rmcourse` row:
  `rmcourse-frozen2` / `rmcourse-frozen3` (embeddings + 2 or 3 lowest layers frozen), `rmcourse-grouped`
  (length-grouped batches), `rmcourse-one-forward` (one stacked forward per batch),
  `rmcourse-grouped-one-forward`, `rmcourse-dropout` (dropout kept), `rmcourse-fp32`,
  `rmcourse-no-prefix-sharing` (a decoder's two rows per pair, `prefix_sharing=False`),
  `rmcourse-no-segments` (every token in segment 0, as TRL's collator sends no token_type_ids),
  `rmcourse-mega8` (length-grouped batches sorted within random groups of 8 batches instead of
  50; patched in here, not a trainer option).

Every trainer: all-MiniLM-L6-v2 (or, with `--backbone smollm2`, SmolLM2-135M-Instruct) with the
same seeded head (`load_reward_model(backbone, seed=s)`),
the same token ids, batch size, one epoch, learning rate, 10% linear warmup then cosine decay,
AdamW (fused, weight decay 0), gradient clipping at 1.0. The hyper-parameters are matched on
purpose; what differs is each trainer's own machinery (precision, checkpointing, batching,
segment ids).

Measured: training pairs/s = pairs trained / seconds of the training call (rmcourse's
`train_reward_model`, which also tokenizes, against `RewardTrainer.train`, whose data is
prepared in its constructor), in wall-clock seconds and in CPU-seconds of the process (`--speed`
says which one the targets use: with one torch thread, CPU-seconds, i.e. the rate on an idle
core, because on a shared machine wall time also counts the time other programs held the core).
Held-out accuracy = share of test pairs with r(chosen) > r(rejected), ties wrong, every model
scored in float32 with its own input convention (TRL's trained weights in a clean copy: with
bf16, accelerate leaves the model's forward wrapped in bf16 autocast, which rounds rewards into
ties). The
accuracy of a trainer is the mean over seeds, with a 95% bootstrap CI over test pairs; the
rmcourse - TRL difference gets a paired bootstrap CI.

Data: pairs are tokenized once with rmcourse's truncation policy (the prompt is cut from the left
when prompt + response exceed --max-length; a pair whose response alone does not fit is left
out and counted) and TRL receives exactly those ids as a pre-tokenized dataset (`chosen_ids`,
`rejected_ids`), so it drops nothing and both trainers see the same tokens.

Targets (the exit code; tests never assert timings): on every data set, rmcourse's median
training pairs/s (see --speed) >= --target-speedup (2.0) x TRL-at-its-defaults', and rmcourse's mean held-out
accuracy at most --max-accuracy-drop (0.5) points below each TRL row's. Exit 0 when all hold,
1 when one is missed (printed as TARGET MISSED), 2 when TRL is not installed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/dialogue.py

DATA_DEFAULTS = {  # max_length, learning rate
    "world": (128, 5e-5),
    "dialogue": (256, 3e-5),
}
# As `python -m rmcourse.train` runs by default: random batches, every layer trained.
RMCOURSE_DEFAULTS = {"group_by_length": False, "frozen_layers": 0}
RMCOURSE_VARIANTS = {  # TrainConfig fields (and "frozen_layers") changed from RMCOURSE_DEFAULTS
    "rmcourse": {},
    "rmcourse-dropout": {"disable_dropout": False},
    "rmcourse-fp32": {"bf16": False},
    "rmcourse-no-prefix-sharing": {"prefix_sharing": False},
    "rmcourse-grouped": {"group_by_length": True},
    "rmcourse-one-forward": {"forward_chunk_size": None},
    "rmcourse-grouped-one-forward": {"group_by_length": True, "forward_chunk_size": None},
    "rmcourse-no-segments": {},
    "rmcourse-mega8": {"group_by_length": True},
    "rmcourse-frozen2": {"frozen_layers": 2},
    "rmcourse-frozen3": {"frozen_layers": 3},
}
TRL_VARIANTS = {
    "trl-defaults": {},  # bf16=True, gradient_checkpointing=True, disable_dropout=True
    "trl-tuned": {"bf16": False, "gradient_checkpointing": False},
}
LABELS = {
    "rmcourse": "rmcourse `train_reward_model` (defaults: no dropout, bf16 where supported, random "
                "batches, length-sorted forward chunks on a CPU; a decoder's pairs packed with "
                "the prompt shared)",
    "rmcourse-dropout": "rmcourse, dropout kept (`disable_dropout=False`)",
    "rmcourse-fp32": "rmcourse, float32 (`bf16=False`)",
    "rmcourse-no-prefix-sharing": "rmcourse, two rows per pair (`prefix_sharing=False`)",
    "rmcourse-grouped": "rmcourse, length-grouped batches (`group_by_length=True`)",
    "rmcourse-one-forward": "rmcourse, one stacked forward per batch (`forward_chunk_size=None`)",
    "rmcourse-grouped-one-forward": "rmcourse, length-grouped batches, one stacked forward",
    "rmcourse-frozen2": "rmcourse, embeddings + 2 lowest layers frozen (`--freeze-layers 2`)",
    "rmcourse-frozen3": "rmcourse, embeddings + 3 lowest layers frozen (`--freeze-layers 3`)",
    "rmcourse-no-segments": "rmcourse, every token in segment 0 (as TRL)",
    "rmcourse-mega8": "rmcourse, length groups drawn from mega-batches of 8 batches, not 50",
    "trl-defaults": "TRL {v} `RewardTrainer` at its defaults (bf16, checkpointing, no dropout)",
    "trl-tuned": "TRL {v}, tuned: float32, no checkpointing, no dropout",
}
DEFAULT_TRAINERS = ["rmcourse", "trl-defaults", "trl-tuned"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", choices=sorted(DATA_DEFAULTS), default=["world", "dialogue"],
                   help="data set(s): world (preference-world pairs) and/or dialogue (the same "
                        "pairs as multi-turn HH-style transcripts, prompts of 100-250 tokens)")
    p.add_argument("--backbone", choices=("minilm", "smollm2"), default="minilm",
                   help="the model every trainer starts from (default: minilm; smollm2 is a "
                        "decoder, where rmcourse packs each pair with its prompt shared)")
    p.add_argument("--n-train", type=int, default=1024, help="training pairs drawn")
    p.add_argument("--n-test", type=int, default=800, help="clean test pairs drawn")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per sequence (default: 128 world, 256 dialogue)")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per step")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the training pairs")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 5e-5 "
                   "world, 3e-5 dialogue)")
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trainers", nargs="+", default=DEFAULT_TRAINERS,
                   choices=[*RMCOURSE_VARIANTS, *TRL_VARIANTS],
                   help=f"rows to run (default: {' '.join(DEFAULT_TRAINERS)})")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--bf16-scoring", action="store_true",
                   help="also score the rmcourse models under bf16 autocast, with and without a "
                        "float32 reward head, and report accuracy, ties and time")
    p.add_argument("--speed", choices=("auto", "cpu", "wall"), default="auto",
                   help="throughput the target uses: wall = pairs per wall-clock second; cpu = "
                        "pairs per CPU-second of the process (with one thread: the rate on an idle "
                        "core, robust when other programs share the machine); auto = cpu with "
                        "--threads 1, wall otherwise")
    p.add_argument("--target-speedup", type=float, default=2.0)
    p.add_argument("--max-accuracy-drop", type=float, default=0.5,
                   help="largest allowed TRL - rmcourse accuracy difference, in points")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the CIs")
    p.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    p.add_argument("--report", metavar="FILE", help="train nothing: print the tables and check "
                   "the targets of runs saved with --json")
    args = p.parse_args(argv)
    for name in ("n_train", "n_test", "batch_size", "threads", "n_boot"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_length is not None and args.max_length < 16:
        p.error("--max-length must be >= 16")
    if args.speed == "auto" and not args.report:  # --report keeps the saved run's choice
        args.speed = "cpu" if args.threads == 1 else "wall"
    if "rmcourse" not in args.trainers:
        p.error("--trainers must include rmcourse (every row is compared with it)")
    return args


def quiet_libraries() -> None:
    """No progress bars or info logs from datasets/transformers/trl during timed runs."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


# ---------------------------------------------------------------- data
def build_data(name: str, args, tokenizer) -> dict:
    """Canonical train/test pairs and their token ids under rmcourse's truncation policy."""
    from rmcourse.prefix_sharing import token_savings
    from rmcourse.tokenization import tokenize_pairs
    from rmcourse.world import PreferenceWorld

    world = PreferenceWorld(seed=0)
    out: dict = {"counts": {}}
    for split, n in (("train", args.n_train), ("test", args.n_test)):
        ds = world.pairs(split, n)
        if name == "dialogue":
            from dialogue import describe, render_dialogues

            ds = render_dialogues(ds, tokenizer, seed=0)
            out.setdefault("prompt_tokens", {})[split] = describe(ds)
        ds = ds.select_columns(["prompt", "chosen", "rejected"])
        tok, report = tokenize_pairs(ds, tokenizer, args.max_length)
        out[split] = tok.select_columns(["prompt", "chosen", "rejected"])  # the rows kept
        out[f"{split}_tok"] = tok
        saved = token_savings(tok["chosen_input_ids"], tok["rejected_input_ids"])
        out["counts"][split] = {"drawn": n, "kept": report.n_kept, "prompt_cut": report.n_truncated,
                                "dropped": report.n_dropped,
                                "mean_tokens": float(np.mean(tok["length"])),
                                "tokens_two_rows": saved["tokens_separate"],
                                "tokens_packed": saved["tokens_packed"]}
    return out


def fresh_model(seed: int, max_length: int, backbone: str = "minilm"):
    """The backbone with the head initialised from `seed`, on the CPU, dropout as shipped."""
    from rmcourse.models import load_reward_model

    return load_reward_model(backbone, device="cpu", seed=seed, max_length=max_length)


def n_steps(args, n_pairs: int) -> int:
    import math

    return max(1, math.ceil(args.epochs * math.ceil(n_pairs / args.batch_size)))


def pairs_trained(steps: int, batch_size: int, n_pairs: int) -> int:
    """Pairs seen in `steps` steps when each epoch ends with one smaller batch."""
    per_epoch = -(-n_pairs // batch_size)
    full, rest = divmod(steps, per_epoch)
    return full * n_pairs + min(rest * batch_size, n_pairs)


# ---------------------------------------------------------------- the trainers
def _drop_segments(model) -> None:
    """Ablation: every token in segment 0, as TRL's collator (no token_type_ids) gives BERT."""
    def hook(module, args, kwargs):
        kwargs.pop("token_type_ids", None)
        return args, kwargs

    model.hf.register_forward_pre_hook(hook, with_kwargs=True)


def run_rmcourse(variant: str, seed: int, args, data: dict) -> dict:
    from rmcourse.metrics import score_tokenized
    from rmcourse.trainer import TrainConfig, train_reward_model, use_bf16

    model = fresh_model(seed, args.max_length, args.backbone)
    if variant == "rmcourse-no-segments":
        _drop_segments(model)
    steps = n_steps(args, len(data["train"]))
    options = {**RMCOURSE_DEFAULTS, **RMCOURSE_VARIANTS[variant]}
    frozen = options.pop("frozen_layers", 0)
    if frozen:
        from rmcourse.freezing import freeze_lower_layers

        freeze_lower_layers(model, frozen)
    config = TrainConfig(lr=args.lr, batch_size=args.batch_size, max_steps=steps,
                         warmup_ratio=args.warmup_ratio, weight_decay=0.0, max_grad_norm=1.0,
                         max_length=args.max_length, seed=seed, progress=False,
                         log_every=steps, **options)
    grouping = contextlib.nullcontext()
    if variant == "rmcourse-mega8":
        import functools
        from unittest import mock

        import rmcourse.trainer
        from rmcourse.tokenization import length_grouped_batches
        grouping = mock.patch.object(rmcourse.trainer, "length_grouped_batches",
                                     functools.partial(length_grouped_batches, mega_batch_mult=8))
    with contextlib.redirect_stdout(io.StringIO()), grouping:  # its "train: N pairs ..." line
        cpu0, start = time.process_time(), time.perf_counter()
        train_reward_model(model, data["train"], None, config)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    cpu0 = time.process_time()
    chosen, rejected = score_tokenized(model, data["test_tok"], batch_size=64,
                                       max_length=args.max_length)
    scoring_cpu = time.process_time() - cpu0
    correct = (chosen > rejected).numpy()
    result = {"seconds": seconds, "cpu_seconds": cpu,
              "pairs": pairs_trained(steps, args.batch_size, len(data["train"])),
              "correct": correct.tolist(), "ties": int((chosen == rejected).sum()),
              "bf16": use_bf16(config, "cpu"), "scoring_cpu_seconds": scoring_cpu}
    if args.bf16_scoring and variant == "rmcourse":
        result["bf16_scoring"] = bf16_scoring(model, data, args, (chosen, rejected))
    return result


def bf16_scoring(model, data, args, float32_scores) -> dict:
    """Accuracy, ties and CPU time of scoring the test pairs under CPU bf16 autocast, with the
    reward head in bf16 (a copy of the model without `float32_readout`) and in float32."""
    import copy

    import rmcourse.device as device
    from rmcourse.metrics import score_tokenized
    from rmcourse.trainer import reward_head

    bf16_head = copy.deepcopy(model)
    head = reward_head(bf16_head)
    head._forward_pre_hooks.clear()  # undo float32_readout on the copy
    head._forward_hooks.clear()
    head.__dict__.pop("_rmcourse_float32_readout", None)
    device.float32_readout(reward_head(model))  # already so when it trained in bf16
    float32_head = model
    original = device.autocast
    c32, r32 = float32_scores
    out = {}
    try:
        device.autocast = lambda dev, enabled=None: original(dev, enabled=True)
        for name, scored in (("bf16, bf16 head", bf16_head), ("bf16, float32 head", float32_head)):
            cpu0 = time.process_time()
            c, r = score_tokenized(scored, data["test_tok"], batch_size=64,
                                   max_length=args.max_length)
            out[name] = {"cpu_seconds": time.process_time() - cpu0,
                         "accuracy": float((c > r).float().mean()), "ties": int((c == r).sum()),
                         "flipped": int(((c > r) != (c32 > r32)).sum()),
                         "max_abs_diff": float((c - c32).abs().max())}
    finally:
        device.autocast = original
    return out


def run_trl(variant: str, seed: int, args, data: dict) -> dict:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    model = fresh_model(seed, args.max_length, args.backbone)
    hf, tokenizer = model.hf, model.tokenizer
    # SmolLM2 comes from a GGUF file that transformers dequantizes to float32 tensors on load but
    # still flags as quantized, and its Trainer refuses to fine-tune a "purely quantized" model.
    # The weights are plain float32 (rmcourse trains them as they are): drop the stale flag.
    if getattr(getattr(hf, "hf_quantizer", None), "quantization_config", None) is not None \
            and str(hf.hf_quantizer.quantization_config.quant_method.value) == "gguf":
        assert all(p.dtype == torch.float32 for p in hf.parameters())
        hf.is_quantized = False
    train_tok = data["train_tok"]
    steps = n_steps(args, len(train_tok))
    ids = Dataset.from_dict({"chosen_ids": train_tok["chosen_input_ids"],
                             "rejected_ids": train_tok["rejected_input_ids"]})
    with tempfile.TemporaryDirectory() as out:
        config = RewardConfig(
            output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=steps,
            learning_rate=args.lr, lr_scheduler_type="cosine",
            warmup_steps=int(round(args.warmup_ratio * steps)), weight_decay=0.0,
            max_grad_norm=1.0, max_length=args.max_length, seed=seed, use_cpu=True,
            report_to="none", save_strategy="no", eval_strategy="no", logging_strategy="no",
            disable_tqdm=True, dataloader_num_workers=0, **TRL_VARIANTS[variant])
        trainer = RewardTrainer(model=hf, args=config, train_dataset=ids, processing_class=tokenizer)
        with contextlib.redirect_stdout(io.StringIO()):  # its end-of-training metrics dict
            cpu0, start = time.process_time(), time.perf_counter()
            trainer.train()
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    # accelerate wrapped hf.forward in bf16 autocast for good (with bf16 TRL): score the trained
    # weights in a clean copy instead, in float32 like every other row (a saved and reloaded TRL
    # model scores the same way).
    clean = fresh_model(seed, args.max_length, args.backbone).hf
    clean.load_state_dict(hf.state_dict())
    chosen, rejected = trl_scores(clean, tokenizer, data["test_tok"], DataCollatorForPreference)
    return {"seconds": seconds, "cpu_seconds": cpu,
            "pairs": pairs_trained(steps, args.batch_size, len(train_tok)),
            "correct": (chosen > rejected).numpy().tolist(), "ties": int((chosen == rejected).sum()),
            "bf16": bool(config.bf16), "gradient_checkpointing": bool(config.gradient_checkpointing)}


@torch.no_grad()
def trl_scores(hf, tokenizer, tok, collator_cls, batch_size: int = 64):
    """Rewards through TRL's own collator (input_ids + attention_mask), float32, eval mode."""
    hf.eval()
    collate = collator_cls(pad_token_id=tokenizer.pad_token_id)
    rows = [{"chosen_ids": c, "rejected_ids": r}
            for c, r in zip(tok["chosen_input_ids"], tok["rejected_input_ids"])]
    chosen, rejected = [], []
    for s in range(0, len(rows), batch_size):
        batch = collate(rows[s:s + batch_size])
        rewards = hf(input_ids=batch["input_ids"],
                     attention_mask=batch["attention_mask"]).logits.squeeze(-1).float()
        c, r = rewards.chunk(2)
        chosen.append(c)
        rejected.append(r)
    return torch.cat(chosen), torch.cat(rejected)


# ---------------------------------------------------------------- statistics
def seed_mean_correct(runs: list[dict]) -> np.ndarray:
    """Per test pair, the share of seeds that got it right."""
    return np.mean([np.asarray(r["correct"], dtype=float) for r in runs], axis=0)


def bootstrap_ci(values: np.ndarray, n_boot: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile CI of the mean of `values` (resampling test pairs)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(runs: dict[str, list[dict]], n_boot: int, speed: str) -> dict:
    """Per trainer: median pairs/s (by `speed`: "cpu" or "wall"), seed-mean accuracy with a
    bootstrap CI over test pairs, and rmcourse minus this trainer (paired over test pairs)."""
    out = {}
    base = seed_mean_correct(runs["rmcourse"])
    for trainer, rs in runs.items():
        per_pair = seed_mean_correct(rs)
        wall_speeds = [r["pairs"] / r["seconds"] for r in rs]
        cpu_speeds = [r["pairs"] / r["cpu_seconds"] for r in rs]
        speeds = cpu_speeds if speed == "cpu" else wall_speeds
        accs = [float(np.mean(r["correct"])) for r in rs]
        out[trainer] = {
            "pairs_per_s": statistics.median(speeds), "pairs_per_s_range": (min(speeds), max(speeds)),
            "pairs_per_wall_s": statistics.median(wall_speeds),
            "pairs_per_cpu_s": statistics.median(cpu_speeds),
            "accuracy": float(per_pair.mean()), "accuracy_ci": bootstrap_ci(per_pair, n_boot),
            "accuracy_per_seed": accs, "ties": sum(r["ties"] for r in rs),
            # rmcourse minus this trainer, paired over test pairs
            "rmcourse_minus": float((base - per_pair).mean()),
            "rmcourse_minus_ci": bootstrap_ci(base - per_pair, n_boot),
        }
    return out


# ---------------------------------------------------------------- main
def run_data_set(name: str, args, trl_version: str) -> tuple[dict, list[str]]:
    max_length, lr = DATA_DEFAULTS[name]
    args = argparse.Namespace(**vars(args))
    args.max_length = args.max_length or max_length
    args.lr = args.lr or lr
    from rmcourse.models import load_tokenizer

    tokenizer = load_tokenizer(args.backbone)  # set up as load_reward_model sets it
    data = build_data(name, args, tokenizer)
    steps = n_steps(args, len(data["train"]))
    print(f"\n## data set: {name}")
    for split, c in data["counts"].items():
        print(f"{split}: {c['kept']} of {c['drawn']} pairs kept at max_length={args.max_length} "
              f"({c['prompt_cut']} with the prompt cut from the left, {c['dropped']} left out), "
              f"{c['mean_tokens']:.0f} tokens per longer side on average; "
              f"{c['tokens_two_rows']} real tokens in two rows per pair, {c['tokens_packed']} "
              f"with the shared prefix once ({100 * (1 - c['tokens_packed'] / c['tokens_two_rows']):.0f}% "
              "fewer)")
    for split, d in data.get("prompt_tokens", {}).items():
        print(f"{split} dialogue prompts before truncation: {d['min']}-{d['max']} tokens "
              f"(median {d['median']:.0f}), {d['mean_turns']:.1f} human turns on average")
    print(f"backbone: {args.backbone}; settings: batch {args.batch_size} pairs, {steps} steps ({args.epochs:g} epoch), lr "
          f"{args.lr:g}, warmup {args.warmup_ratio:g} then cosine, AdamW wd 0, clip 1.0, "
          f"{torch.get_num_threads()} torch threads; seeds {args.seeds}", flush=True)

    runs: dict[str, list[dict]] = {t: [] for t in args.trainers}
    for k, seed in enumerate(args.seeds):
        order = args.trainers[k % len(args.trainers):] + args.trainers[:k % len(args.trainers)]
        for trainer in order:  # rotated each seed, so machine-load drift hits every row alike
            run = (run_rmcourse if trainer in RMCOURSE_VARIANTS else run_trl)(trainer, seed, args, data)
            run["seed"] = seed
            runs[trainer].append(run)
            if args.json:  # what ran so far survives an interrupted run (--report reads it)
                with open(f"{args.json}.partial", "w") as fh:
                    json.dump({name: {"args": vars(args), "counts": data["counts"],
                                      "prompt_tokens": data.get("prompt_tokens"), "steps": steps,
                                      "runs": runs, "trl_version": trl_version}}, fh, indent=1)
            print(f"  seed {seed} {trainer:22s} {run['pairs']} pairs in {run['seconds']:6.1f} s = "
                  f"{run['pairs'] / run['seconds']:5.2f} pairs/s ({run['pairs'] / run['cpu_seconds']:.2f} "
                  f"per CPU-s), held-out accuracy {np.mean(run['correct']):.3f}, ties {run['ties']}",
                  flush=True)
            if "bf16_scoring" in run:
                print(f"      scoring float32: {run['scoring_cpu_seconds']:.1f} CPU-s", flush=True)
            for how, s in run.get("bf16_scoring", {}).items():
                print(f"      scoring {how}: accuracy {s['accuracy']:.3f}, ties {s['ties']}, "
                      f"{s['flipped']} pair(s) ordered differently from float32, "
                      f"{s['cpu_seconds']:.1f} CPU-s", flush=True)
    summary, failed = report_data_set(name, runs, args, trl_version)
    record = {"args": {k: v for k, v in vars(args).items()}, "counts": data["counts"],
              "prompt_tokens": data.get("prompt_tokens"), "steps": steps, "runs": runs,
              "summary": summary, "trl_version": trl_version}
    return record, failed


def report_data_set(name: str, runs: dict[str, list[dict]], args,
                    trl_version: str) -> tuple[dict, list[str]]:
    """Print one data set's table and speed-up; return the summary and the targets missed."""
    runs = {trainer: rs for trainer, rs in runs.items() if rs}  # an interrupted run's empty rows
    summary = summarise(runs, args.n_boot, args.speed)
    unit = "per CPU-second (1 thread)" if args.speed == "cpu" else "per wall-clock second"
    print(f"\n| trainer ({name}) | training pairs {unit}, median (range) | pairs per wall-clock "
          f"second, median | held-out accuracy, mean of {len(args.seeds)} seeds [95% CI] | "
          f"per seed | rmcourse minus this row, points [95% CI] |")
    print("|---|---|---|---|---|---|")
    for trainer in runs:
        s = summary[trainer]
        lo, hi = s["pairs_per_s_range"]
        clo, chi = s["accuracy_ci"]
        dlo, dhi = s["rmcourse_minus_ci"]
        diff = "" if trainer == "rmcourse" else f"{100 * s['rmcourse_minus']:+.1f} [{100 * dlo:+.1f}, {100 * dhi:+.1f}]"
        print(f"| {LABELS[trainer].format(v=trl_version)} | {s['pairs_per_s']:.2f} ({lo:.2f}-{hi:.2f}) | "
              f"{s['pairs_per_wall_s']:.2f} | {100 * s['accuracy']:.1f}% [{100 * clo:.1f}, {100 * chi:.1f}] | "
              f"{', '.join(f'{100 * a:.1f}' for a in s['accuracy_per_seed'])} | {diff} |")
    failed = []
    if "trl-defaults" not in summary:
        speedup = wall_speedup = float("nan")
        failed.append(f"{name}: no trl-defaults row, so the targets were not checked")
    else:
        speedup = summary["rmcourse"]["pairs_per_s"] / summary["trl-defaults"]["pairs_per_s"]
        wall_speedup = (summary["rmcourse"]["pairs_per_wall_s"]
                        / summary["trl-defaults"]["pairs_per_wall_s"])
        print(f"\nspeed-up rmcourse / TRL at its defaults ({name}): {speedup:.2f}x in pairs "
              f"{unit} (target >= {args.target_speedup:g}x); {wall_speedup:.2f}x in pairs per "
              "wall-clock second")
    if speedup < args.target_speedup:
        failed.append(f"{name}: rmcourse is {speedup:.2f}x TRL-at-its-defaults' training pairs/s, "
                      f"below the target {args.target_speedup:g}x")
    for trainer in TRL_VARIANTS:
        if trainer in summary:
            gap = 100 * summary[trainer]["rmcourse_minus"]
            if gap < -args.max_accuracy_drop:
                failed.append(f"{name}: rmcourse's held-out accuracy is {-gap:.1f} points below "
                              f"{trainer}'s (allowed {args.max_accuracy_drop:g})")
    if "rmcourse-no-prefix-sharing" in summary:
        sharing = (summary["rmcourse"]["pairs_per_s"]
                   / summary["rmcourse-no-prefix-sharing"]["pairs_per_s"])
        summary["prefix_sharing_speedup"] = sharing
        print(f"speed-up of prefix sharing ({name}): {sharing:.2f}x in pairs {unit}")
    summary["speedup"], summary["wall_speedup"] = speedup, wall_speedup
    return summary, failed


def report_saved(path: str, args) -> int:
    """`--report FILE`: the tables and targets of a saved `--json` run, printed again (with the
    current --speed, --n-boot and targets), without training anything."""
    with open(path) as fh:
        records = json.load(fh)
    failed = []
    for name, record in records.items():
        speed = record["args"]["speed"] if args.speed == "auto" else args.speed
        saved = argparse.Namespace(**{**record["args"], "speed": speed, "n_boot": args.n_boot,
                                      "target_speedup": args.target_speedup,
                                      "max_accuracy_drop": args.max_accuracy_drop})
        print(f"\n## data set: {name} (saved run: seeds {saved.seeds}, {saved.threads} torch "
              f"thread(s))")
        failed += report_data_set(name, record["runs"], saved, record.get("trl_version", "?"))[1]
    for message in failed:
        print(f"TARGET MISSED: {message}", file=sys.stderr)
    if not failed:
        print("all targets met")
    return 1 if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        return report_saved(args.report, args)
    try:
        import trl
    except ImportError:
        print("trl is not installed: pip install -c constraints.txt -r benchmarks/requirements.txt",
              file=sys.stderr)
        return 2
    import transformers

    import rmcourse
    from rmcourse.device import bf16_supported, cpu_bf16_flags
    from rmcourse.world import WORLD_VERSION

    torch.set_num_threads(args.threads)
    quiet_libraries()
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, bf16 flags "
          f"{cpu_bf16_flags() or 'none'} (rmcourse bf16 on this CPU: {bf16_supported('cpu')}), "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__}, transformers {transformers.__version__}, trl "
          f"{trl.__version__}, rmcourse {rmcourse.__version__}, preference world version "
          f"{WORLD_VERSION}")
    records, failed = {}, []
    for name in args.data:
        records[name], missed = run_data_set(name, args, trl.__version__)
        failed += missed
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)
    for message in failed:
        print(f"TARGET MISSED: {message}", file=sys.stderr)
    if not failed:
        print("all targets met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
