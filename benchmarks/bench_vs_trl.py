"""rmcourse's reward-model trainer against TRL's RewardTrainer: same model, pairs and settings.

    pip install -c constraints.txt -r benchmarks/requirements.txt   # trl, optional
    python benchmarks/bench_vs_trl.py                                # defaults: see --help

Both sides train all-MiniLM-L6-v2 (rmcourse.models.load_reward_model("minilm"), identical starting
weights, including the freshly initialised head) on the same preference-world pairs, with the same
learning rate and schedule (linear warmup, cosine decay), batch size, steps, max length, AdamW
(no weight decay), gradient clipping, dropout off (TRL's default, applied to both) and float32.
Training pairs/s = pairs trained / wall-clock seconds of the training call (`train_reward_model`,
which also tokenizes, against `RewardTrainer.train`, whose data was tokenized in its constructor).
Held-out accuracy = share of clean test pairs with reward(chosen) > reward(rejected), ties wrong,
each model scored the way it was trained.

Fairness notes (also in benchmarks/README.md):
- TRL DROPS pairs longer than max_length (trl issue #2488) while rmcourse cuts the prompt from
  the left; both get only the pairs that fit whole, and the script reports how many that is.
- TRL receives the exact token ids rmcourse builds ([CLS] prompt [SEP] response [SEP]) as
  `chosen_ids` / `rejected_ids` (a pre-tokenized dataset, which RewardTrainer accepts). Its
  collator sends no token_type_ids, so BERT sees segment 0 everywhere; rmcourse sends the
  tokenizer's segment ids (response = 1). Each model is evaluated with its own convention.
- TRL's RewardConfig defaults to gradient_checkpointing=True and bf16=True; both are turned off
  here because rmcourse uses neither on CPU (checkpointing re-runs the forward: slower, and
  only worth it when memory is short). Its optimizer stays TRL's default (fused AdamW).
- Only one thing differs by design: rmcourse batches pairs of similar length together
  (length-grouped batches), TRL samples batches uniformly at random (its default sampler).

The script exits 1 when rmcourse is below --target-speedup x TRL's pairs/s or more than
--max-accuracy-drop below TRL's held-out accuracy.
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

import torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=1024, help="preference-world training pairs drawn")
    p.add_argument("--n-test", type=int, default=800, help="clean test pairs drawn")
    p.add_argument("--max-length", type=int, default=128, help="tokens per sequence (both sides)")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per step")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the kept training pairs")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per side, alternating rmcourse/TRL then TRL/rmcourse (median reported)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    p.add_argument("--target-speedup", type=float, default=1.5)
    p.add_argument("--max-accuracy-drop", type=float, default=0.01,
                   help="largest allowed (TRL accuracy - rmcourse accuracy), as a fraction")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    for name in ("n_train", "n_test", "max_length", "batch_size", "repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
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
def build_data(args, tokenizer):
    """(train canonical, train ids, test canonical, test ids, counts): pairs that fit whole."""
    from rmcourse.tokenization import tokenize_pairs
    from rmcourse.world import PreferenceWorld

    world = PreferenceWorld(seed=0)
    counts = {}
    out = []
    for split, n in (("train", args.n_train), ("test", args.n_test)):
        ds = world.pairs(split, n).select_columns(["prompt", "chosen", "rejected"])
        # Tokenize with room to spare, then keep the pairs whose both sides fit max_length: then
        # rmcourse never cuts a prompt and TRL never drops a pair, so both train on the same ids.
        tok, _ = tokenize_pairs(ds, tokenizer, 512)
        fits = [i for i, (c, r) in enumerate(zip(tok["chosen_input_ids"], tok["rejected_input_ids"]))
                if max(len(c), len(r)) <= args.max_length]
        counts[split] = {"drawn": n, "kept": len(fits), "dropped": n - len(fits)}
        ds, tok = ds.select(fits), tok.select(fits)
        ids = {"chosen_ids": tok["chosen_input_ids"], "rejected_ids": tok["rejected_input_ids"]}
        out.append((ds, ids))
    (train_ds, train_ids), (test_ds, test_ids) = out
    return train_ds, train_ids, test_ds, test_ids, counts


def fresh_model(args):
    """MiniLM with the same seeded head every call, dropout off (TRL's default)."""
    from rmcourse.models import load_reward_model

    model = load_reward_model("minilm", device="cpu", seed=args.seed, max_length=args.max_length)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def total_steps(args, n_pairs: int) -> int:
    import math

    return max(1, math.ceil(args.epochs * math.ceil(n_pairs / args.batch_size)))


# ---------------------------------------------------------------- the two sides
def run_rmcourse(args, train_ds, test_ds, steps: int) -> dict:
    from rmcourse.trainer import TrainConfig, evaluate, train_reward_model

    model = fresh_model(args)
    config = TrainConfig(lr=args.lr, batch_size=args.batch_size, max_steps=steps,
                         warmup_ratio=args.warmup_ratio, weight_decay=0.0, max_grad_norm=1.0,
                         max_length=args.max_length, group_by_length=True, seed=args.seed,
                         progress=False, log_every=max(1, steps))
    with contextlib.redirect_stdout(io.StringIO()):  # its "train: N pairs ..." line
        start = time.perf_counter()
        result = train_reward_model(model, train_ds, None, config)
        seconds = time.perf_counter() - start
    pairs = _pairs_trained(steps, args.batch_size, len(train_ds))
    scores = evaluate(model, test_ds, batch_size=64, max_length=args.max_length)
    return {"seconds": seconds, "pairs": pairs, "pairs_per_s": pairs / seconds,
            "step_only_pairs_per_s": result.pairs_per_second, "accuracy": scores["accuracy"],
            "final_loss": float(result.history["loss"].iloc[-1])}


def _pairs_trained(steps: int, batch_size: int, n_pairs: int) -> int:
    """Pairs seen in `steps` steps when each epoch ends with one smaller batch."""
    per_epoch_batches = -(-n_pairs // batch_size)
    full_epochs, rest = divmod(steps, per_epoch_batches)
    return full_epochs * n_pairs + min(rest * batch_size, n_pairs)


def run_trl(args, train_ids, test_ids, steps: int) -> dict:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    model = fresh_model(args)
    hf, tokenizer = model.hf, model.tokenizer
    warmup = int(round(args.warmup_ratio * steps))
    with tempfile.TemporaryDirectory() as out:
        config = RewardConfig(
            output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=steps,
            learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=warmup,
            weight_decay=0.0, max_grad_norm=1.0, max_length=args.max_length, seed=args.seed,
            gradient_checkpointing=False, bf16=False, use_cpu=True, report_to="none",
            save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
            dataloader_num_workers=0)
        trainer = RewardTrainer(model=hf, args=config, train_dataset=Dataset.from_dict(train_ids),
                                processing_class=tokenizer)
        with contextlib.redirect_stdout(io.StringIO()):  # its end-of-training metrics dict
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
    pairs = _pairs_trained(steps, args.batch_size, len(train_ids["chosen_ids"]))
    accuracy = trl_accuracy(hf, tokenizer, test_ids, DataCollatorForPreference)
    return {"seconds": seconds, "pairs": pairs, "pairs_per_s": pairs / seconds,
            "accuracy": accuracy}


@torch.no_grad()
def trl_accuracy(hf, tokenizer, ids: dict, collator_cls, batch_size: int = 64) -> float:
    """TRL's own forward (its collator, input_ids + attention_mask), ties counted wrong."""
    hf.eval()
    collate = collator_cls(pad_token_id=tokenizer.pad_token_id)
    rows = [{"chosen_ids": c, "rejected_ids": r} for c, r in zip(ids["chosen_ids"], ids["rejected_ids"])]
    correct = 0
    for s in range(0, len(rows), batch_size):
        batch = collate(rows[s:s + batch_size])
        rewards = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
        chosen, rejected = rewards.chunk(2)
        correct += int((chosen > rejected).sum())
    return correct / len(rows)


# ---------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import trl
    except ImportError:
        print("trl is not installed: pip install -c constraints.txt -r benchmarks/requirements.txt",
              file=sys.stderr)
        return 2
    import transformers

    import rmcourse

    torch.set_num_threads(args.threads)
    quiet_libraries()
    tokenizer = fresh_model(args).tokenizer
    train_ds, train_ids, test_ds, test_ids, counts = build_data(args, tokenizer)
    steps = total_steps(args, len(train_ds))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}; torch {torch.__version__}, transformers "
          f"{transformers.__version__}, trl {trl.__version__}, rmcourse {rmcourse.__version__}")
    for split, c in counts.items():
        print(f"{split}: {c['kept']} of {c['drawn']} pairs fit max_length={args.max_length} "
              f"({c['dropped']} left out: TRL would drop them, rmcourse would cut their prompt)")
    print(f"settings: batch {args.batch_size} pairs, {steps} steps ({args.epochs:g} epoch), lr "
          f"{args.lr:g}, warmup {args.warmup_ratio:g}, cosine, AdamW wd 0, clip 1.0, dropout off, fp32")

    runs = {"rmcourse": [], "trl": []}
    for repeat in range(args.repeats):
        order = ("rmcourse", "trl") if repeat % 2 == 0 else ("trl", "rmcourse")
        for side in order:
            if side == "rmcourse":
                res = run_rmcourse(args, train_ds, test_ds, steps)
            else:
                res = run_trl(args, train_ids, test_ids, steps)
            runs[side].append(res)
            print(f"  run {repeat + 1} {side:8s}: {res['pairs']} pairs in {res['seconds']:6.1f} s = "
                  f"{res['pairs_per_s']:5.2f} pairs/s, held-out accuracy {res['accuracy']:.3f}",
                  flush=True)

    summary = {}
    for side, rs in runs.items():
        summary[side] = {"pairs_per_s": statistics.median(r["pairs_per_s"] for r in rs),
                         "accuracy": statistics.mean(r["accuracy"] for r in rs)}
    speedup = summary["rmcourse"]["pairs_per_s"] / summary["trl"]["pairs_per_s"]
    drop = summary["trl"]["accuracy"] - summary["rmcourse"]["accuracy"]
    print()
    print("| trainer | training pairs/s | held-out accuracy |")
    print("|---|---|---|")
    for side, name in (("rmcourse", "rmcourse.train_reward_model"), ("trl", f"trl {trl.__version__} RewardTrainer")):
        print(f"| {name} | {summary[side]['pairs_per_s']:.2f} | {100 * summary[side]['accuracy']:.1f}% |")
    print(f"\nspeed-up rmcourse / TRL: {speedup:.2f}x (target >= {args.target_speedup:g}x); "
          f"accuracy rmcourse - TRL: {-100 * drop:+.1f} points (allowed >= {-100 * args.max_accuracy_drop:.1f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "counts": counts, "steps": steps, "runs": runs,
                       "summary": summary, "speedup": speedup}, fh, indent=2)
    failed = []
    if speedup < args.target_speedup:
        failed.append(f"rmcourse is {speedup:.2f}x TRL's training pairs/s, below the target "
                      f"{args.target_speedup:g}x")
    if drop > args.max_accuracy_drop:
        failed.append(f"rmcourse's held-out accuracy is {100 * drop:.1f} points below TRL's "
                      f"(allowed {100 * args.max_accuracy_drop:.1f})")
    for message in failed:
        print(f"TARGET MISSED: {message}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
