"""Where bf16 autocast's gain goes in one MiniLM training step on a CPU (CPU time, 1 thread).

    python benchmarks/cpu_bf16_step.py                 # 128 and 256 tokens, 3 rounds
    python benchmarks/cpu_bf16_step.py --profile       # plus torch.profiler's top operators

One step = forward over 32 sequences (16 pairs, a quarter of the rows padded to 3/4 length),
pairwise loss, backward, clipping, fused AdamW: the trainer's step without its data pipeline.
Three settings take turns step by step: float32; bf16 autocast (reward head in float32); bf16
autocast with attention in float32 (`rmcourse.trainer.float32_attention`, what the trainer does
on a CPU). CPU time (time.process_time) of one torch thread is measured instead of wall time,
because on a shared machine wall time also counts the time other programs held the core; the
best of the rounds is reported.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="print the top operators of each setting")
    args = p.parse_args(argv)

    import rmcourse.device as device
    from rmcourse.models import load_reward_model
    from rmcourse.trainer import adamw, dropout_disabled, float32_attention, param_groups, reward_head

    torch.set_num_threads(1)
    print(f"CPU bf16 flags: {device.cpu_bf16_flags() or 'none'}; torch {torch.__version__}")
    model = load_reward_model("minilm", device="cpu")
    model.train()
    device.float32_readout(reward_head(model))
    optimizer = adamw(param_groups(model, 0.0), 1e-5)
    settings = {"float32": (False, False), "bf16 autocast": (True, False),
                "bf16 autocast, float32 attention": (True, True)}
    generator = torch.Generator().manual_seed(0)
    with dropout_disabled(model):
        for length in args.lengths:
            n = 32
            ids = torch.randint(1000, 20000, (n, length), generator=generator)
            ids[:, 0] = 101
            mask = torch.ones(n, length, dtype=torch.long)
            mask[n // 2::2, length * 3 // 4:] = 0
            types = torch.zeros(n, length, dtype=torch.long)

            def step(bf16: bool, f32_attention: bool) -> float:
                start = time.process_time()
                attention = float32_attention(model) if f32_attention else contextlib.nullcontext()
                with device.autocast("cpu", enabled=bf16), attention:
                    rewards = model(ids, mask, types)
                loss = -torch.nn.functional.logsigmoid(rewards[: n // 2] - rewards[n // 2:]).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                return time.process_time() - start

            for setting in settings.values():
                step(*setting)  # warm-up: first-shape costs
            times: dict[str, list[float]] = {name: [] for name in settings}
            for _ in range(args.rounds):
                for name, setting in settings.items():
                    times[name].append(step(*setting))
            base = min(times["float32"])
            for name, ts in times.items():
                print(f"{length} tokens, {name:34s} best {min(ts):.2f} CPU-s per step "
                      f"({min(ts) / base:.2f}x float32), rounds {[round(t, 2) for t in ts]}")
            if args.profile:
                from torch.profiler import ProfilerActivity, profile

                for name, setting in settings.items():
                    with profile(activities=[ProfilerActivity.CPU]) as prof:
                        step(*setting)
                    print(f"--- {length} tokens, {name}")
                    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=6))


if __name__ == "__main__":
    main()
