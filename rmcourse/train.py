"""Train a reward model from the command line, on one process or many (torchrun).

    python -m rmcourse.train --data world:train:2000 --val-data world:val:200 \\
        --backbone minilm --output artifacts/rm-minilm --max-steps 100

    torchrun --nproc_per_node=2 -m rmcourse.train --data world:train:2000 ...

Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) every process joins a process group (gloo on
CPU, nccl on CUDA), wraps the model in DistributedDataParallel and trains on its own share of the
batches; only rank 0 prints, shows progress and writes the checkpoint. `--batch-size` is per
process, so one optimizer step sees batch-size x grad-accum x processes pairs.

Defaults a practitioner would choose (as TRL's RewardConfig): dropout off while training
(--keep-dropout keeps it) and bf16 autocast where the device has bf16 units (--bf16 auto: a CUDA
GPU, or a CPU with AMX-BF16 / AVX512-BF16 / Arm BF16), float32 elsewhere; the run prints what it
chose. Batches are random; on a CPU each batch's rows run through the model in length-sorted
chunks (the same pairs, less padding). --group-by-length batches pairs of similar length instead
(less padding still, but measured less accurate: benchmarks/README.md). A decoder backbone
(smollm2) packs each pair in one row, so its shared prompt is computed once (--prefix-sharing
auto; same rewards, rmcourse.prefix_sharing). --freeze-layers N freezes
the embeddings and the N lowest layers: faster steps, but at this trainer's learning rate 2 frozen
layers were less accurate on the preference world (same file).

The checkpoint folder is written atomically (RewardModel.save_pretrained) and is a plain
transformers folder: `AutoModelForSequenceClassification.from_pretrained(output)` reloads it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

WORLD_PREFIX = "world:"
BACKBONES = ("minilm", "smollm2")

EPILOG = """\
data:
  --data / --val-data take a local .json/.jsonl/.parquet/.csv file or a folder of them, in any
  format rmcourse.formats understands (hh_rlhf, trl_standard, trl_implicit, trl_conversational,
  trl_conversational_implicit, rewardbench, ultrafeedback; --format auto detects it), or
  world:SPLIT:N for the first N pairs of the course's preference world (SPLIT: train,
  validation or val, test; the test split is clean: chosen has the higher gold reward).
  world:SPLIT:N:SEED picks another world (default seed 0, independent of --seed).

examples:
  python -m rmcourse.train --data world:train:512 --val-data world:validation:128 \\
      --output artifacts/rm-cli --max-steps 20
  torchrun --nproc_per_node=2 -m rmcourse.train --data world:train:256 --max-steps 4 \\
      --max-length 64 --weights-checksum artifacts/checksums.json
"""


# ---------------------------------------------------------------- argument types
def _number_type(convert: type, minimum: float, inclusive: bool, what: str):
    """An argparse `type=` that parses with `convert` and refuses values below `minimum`."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        low = value < minimum if inclusive else value <= minimum
        if not math.isfinite(value) or low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


_positive_int = _number_type(int, 1, True, "a positive integer")
_non_negative_int = _number_type(int, 0, True, "an integer >= 0")
_positive_float = _number_type(float, 0.0, False, "a positive number")
_non_negative_float = _number_type(float, 0.0, True, "a number >= 0")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (see `python -m rmcourse.train --help`)."""
    p = argparse.ArgumentParser(
        prog="python -m rmcourse.train",
        description="Train a reward model (Bradley-Terry pairwise loss) on preference pairs and "
                    "save a transformers checkpoint. Runs under torchrun for data-parallel training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="PATH|world:SPLIT:N",
                      help="training pairs: a local file/folder, or world:train:N")
    data.add_argument("--val-data", metavar="PATH|world:SPLIT:N",
                      help="validation pairs (same forms as --data); validated at the end and "
                           "every --eval-every steps")
    data.add_argument("--format", default="auto", metavar="FMT",
                      help="format of local data (default: auto-detect); see below")
    model = p.add_argument_group("model")
    model.add_argument("--backbone", default="minilm", metavar="NAME|PATH",
                       help="minilm (bundled BERT encoder), smollm2 (bundled decoder, slow on CPU) "
                            "or a local transformers model folder / .gguf file (default: minilm)")
    model.add_argument("--freeze-layers", type=_non_negative_int, default=None, metavar="N",
                       help="freeze the embeddings and the N lowest transformer layers (faster "
                            "steps on CPU; chapter 03's CPU recipe uses 2 of MiniLM's 6; default: "
                            "train everything)")
    model.add_argument("--output", metavar="DIR",
                       help="checkpoint folder, written atomically by rank 0 (default: none)")
    train = p.add_argument_group("training")
    train.add_argument("--max-length", type=_positive_int, default=128,
                       help="tokens per text; longer prompts are cut from the left, pairs whose "
                            "response alone does not fit are dropped (default: 128)")
    train.add_argument("--batch-size", type=_positive_int, default=16,
                       help="pairs per forward, per process (default: 16)")
    train.add_argument("--grad-accum", type=_positive_int, default=1,
                       help="micro-batches per optimizer step (default: 1)")
    train.add_argument("--lr", type=_positive_float, default=5e-5, help="peak learning rate (default: 5e-5)")
    train.add_argument("--epochs", type=_positive_float, default=1.0,
                       help="passes over the data (default: 1, as InstructGPT and Llama 2)")
    train.add_argument("--max-steps", type=_positive_int,
                       help="optimizer steps; overrides --epochs")
    train.add_argument("--warmup-ratio", type=_non_negative_float, default=0.1,
                       help="share of steps with linear warmup (default: 0.1)")
    train.add_argument("--weight-decay", type=_non_negative_float, default=0.01,
                       help="AdamW weight decay on matrices (default: 0.01)")
    train.add_argument("--margin", action="store_true",
                       help="use the data's 'margin' column: loss -log sigmoid(r_c - r_r - margin) (Llama 2)")
    train.add_argument("--center-rewards-coef", type=_non_negative_float, default=0.0,
                       help="reward centering coefficient (Eisenstein et al. 2023; TRL suggests 0.01)")
    train.add_argument("--group-by-length", action=argparse.BooleanOptionalAction, default=False,
                       help="batch pairs of similar length together: less padding, but each step "
                            "sees one length band (measured 1.9 points less accurate on the "
                            "preference world; default: random batches)")
    train.add_argument("--eval-every", type=_positive_int, help="validate every N optimizer steps")
    train.add_argument("--early-stopping-patience", type=_positive_int,
                       help="stop after N validations without improvement and restore the best "
                            "weights (needs --val-data and --eval-every)")
    train.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default: 0)")
    train.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                       help="bf16 autocast: auto = on a CUDA GPU with bf16 and on a CPU with bf16 "
                            "matrix units (AMX-BF16, AVX512-BF16, Arm BF16), float32 elsewhere; "
                            "on = always (emulated, slow, on other CPUs); off = float32 "
                            "(default: auto)")
    train.add_argument("--prefix-sharing", choices=("auto", "on", "off"), default="auto",
                       help="pack each pair as one row [prompt | chosen | rejected] so the "
                            "prompt is computed once: auto = for a decoder in one process (the "
                            "same rewards and gradients); on = insist (an encoder is refused: "
                            "its prompt attends to the answer); off = two rows (default: auto)")
    train.add_argument("--keep-dropout", action="store_true",
                       help="keep the backbone's dropout while training (default: off, as TRL's "
                            "disable_dropout: dropout draws different masks for the chosen and "
                            "rejected sides of a pair, noise straight into the reward margin)")
    run = p.add_argument_group("run")
    run.add_argument("--threads", type=_positive_int,
                     help="torch CPU threads per process (default: torch's choice; torchrun sets 1)")
    run.add_argument("--weights-checksum", metavar="FILE",
                     help="write a JSON file with each rank's SHA-256 of the final weights "
                          "(identical under correct data-parallel training)")
    run.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bar")
    return p


# ---------------------------------------------------------------- validation
def parse_world_spec(spec: str) -> tuple[str, int, int]:
    """'world:SPLIT:N[:SEED]' -> (split, N, world seed); ValueError naming what is wrong.

    SPLIT is train, validation (or val) or test; the world's seed defaults to 0, the course's
    world, and is independent of --seed (the training seed).
    """
    from rmcourse.world import SPLITS

    parts = spec.split(":")
    if len(parts) not in (3, 4) or parts[0] != "world":
        raise ValueError(f"{spec!r} is not of the form world:SPLIT:N (e.g. world:train:1000)")
    split = {"val": "validation"}.get(parts[1], parts[1])
    if split not in SPLITS:
        raise ValueError(f"unknown preference-world split {parts[1]!r}; use one of {', '.join(SPLITS)}")
    numbers = []
    for name, text, low in (("N", parts[2], 1), ("SEED", parts[3] if len(parts) == 4 else "0", 0)):
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{name} in {spec!r} must be an integer, got {text!r}") from None
        if value < low:
            raise ValueError(f"{name} in {spec!r} must be >= {low}, got {value}")
        numbers.append(value)
    return split, numbers[0], numbers[1]


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Checks argparse cannot do alone; each failure is `parser.error(<what is wrong>)` (exit 2)."""
    from rmcourse.formats import KNOWN_FORMATS
    from rmcourse.models import BUNDLED

    for flag, spec in (("--data", args.data), ("--val-data", args.val_data)):
        if spec is None:
            continue
        if spec.startswith(WORLD_PREFIX):
            try:
                parse_world_spec(spec)
            except ValueError as err:
                parser.error(f"{flag}: {err}")
        elif not Path(spec).exists():
            parser.error(f"{flag}: no such file or folder {spec!r} "
                         "(give a local file/folder or world:SPLIT:N)")
    if args.format != "auto" and args.format not in KNOWN_FORMATS:
        parser.error(f"--format: unknown format {args.format!r}; use auto or one of "
                     f"{', '.join(KNOWN_FORMATS)}")
    backbone = args.backbone
    if backbone not in BUNDLED:
        path = Path(backbone)
        if not (path.is_dir() or (path.is_file() and path.suffix == ".gguf")):
            parser.error(f"--backbone: unknown backbone {backbone!r}; use one of "
                         f"{', '.join(sorted(BUNDLED))} or a local model folder / .gguf file")
        if path.is_dir() and not (path / "config.json").exists():
            parser.error(f"--backbone: folder {backbone!r} has no config.json, so it is not a "
                         "transformers model folder")
    if args.output is not None:
        from rmcourse.models import check_output_folder

        try:  # before training: an existing folder that is not a checkpoint is never replaced
            check_output_folder(args.output)
        except ValueError as err:
            parser.error(f"--output: {err}")
    if args.early_stopping_patience is not None and (args.val_data is None or args.eval_every is None):
        parser.error("--early-stopping-patience needs --val-data and --eval-every")
    if args.eval_every is not None and args.val_data is None:
        parser.error("--eval-every needs --val-data")
    if args.warmup_ratio > 1:
        parser.error(f"--warmup-ratio must be in [0, 1], got {args.warmup_ratio}")
    return args


# ---------------------------------------------------------------- data
def load_data(spec: str, fmt: str = "auto"):
    """Canonical pairs from a local path or a `world:SPLIT:N[:SEED]` spec."""
    if spec.startswith(WORLD_PREFIX):
        split, n, seed = parse_world_spec(spec)
        from rmcourse.world import PreferenceWorld

        return PreferenceWorld(seed=seed).pairs(split, n)
    from rmcourse.formats import load_pairs

    return load_pairs(spec, fmt=fmt)


def load_data_or_exit(flag: str, spec: str, fmt: str = "auto"):
    """`load_data`, with bad data (missing, empty, malformed, wrong types) turned into
    `SystemExit("error: FLAG: <what is wrong>")`: exit code 1 and no traceback."""
    try:
        return load_data(spec, fmt)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise SystemExit(f"error: {flag}: {err}") from None


def describe_choices(config, device, world_size: int = 1, model=None) -> str:
    """One line saying what the trainer will use: precision (and why), dropout and batching,
    and, given the model, whether pairs are packed with their prompt shared (and why)."""
    import os

    from rmcourse.device import cpu_bf16_flags
    from rmcourse.trainer import forward_chunk_size, use_bf16

    bf16 = use_bf16(config, device)
    if config.bf16 != "auto":
        why = f"--bf16 {'on' if bf16 else 'off'}"
    elif device.type != "cpu":
        why = f"--bf16 auto on {device.type}"
    elif "RMCOURSE_BF16" in os.environ:
        why = f"--bf16 auto; RMCOURSE_BF16={os.environ['RMCOURSE_BF16']}"
    elif bf16:
        why = f"--bf16 auto; this CPU has bf16 matrix units: {', '.join(cpu_bf16_flags())}"
    else:
        why = "--bf16 auto; this CPU has no bf16 matrix units"
    precision = "bf16 autocast" if bf16 else "float32"
    dropout = "kept (--keep-dropout)" if not config.disable_dropout else \
        "off while training (--keep-dropout keeps it)"
    batches = "grouped by length" if config.group_by_length else "random"
    chunk = forward_chunk_size(config, device, world_size)
    forward = ("one stacked forward" if chunk is None
               else f"forward in length-sorted chunks of at most {chunk} rows")
    line = f"precision: {precision} ({why}); dropout: {dropout}; batches: {batches}, {forward}"
    if model is not None:
        line += f"; prefix sharing: {_describe_sharing(config, model, world_size)}"
    return line


def _describe_sharing(config, model, world_size: int) -> str:
    from rmcourse.prefix_sharing import check_prefix_sharing, resolve_prefix_sharing

    flag = {True: "on", False: "off", "auto": "auto"}[config.prefix_sharing]
    if resolve_prefix_sharing(config.prefix_sharing, model, world_size):
        return (f"on (--prefix-sharing {flag}; decoder: each pair is one row [prompt | chosen | "
                "rejected], its prompt computed once, the same rewards)")
    if config.prefix_sharing is False:
        return "off (--prefix-sharing off)"
    if world_size > 1:
        return f"off (--prefix-sharing auto; {world_size} processes: not under DDP)"
    try:
        check_prefix_sharing(model)
    except (TypeError, ValueError) as err:
        reason = str(err).split(":")[0] if "encoder" in str(err) else str(err)
        return f"off (--prefix-sharing auto; {reason})"
    return "off"


def _say(info, *lines: str) -> None:
    if info.is_main:
        for line in lines:
            print(line, flush=True)


# ---------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m rmcourse.train`; returns the process exit code."""
    parser = build_parser()
    args = validate_args(parser, parser.parse_args(argv))

    import torch

    from rmcourse.distributed import (cleanup_distributed, gather_objects, init_distributed,
                                      parameter_checksum)
    from rmcourse.freezing import freeze_lower_layers
    from rmcourse.models import load_reward_model
    from rmcourse.trainer import TrainConfig, train_reward_model

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info, device = init_distributed()
    try:
        _say(info, f"rmcourse.train: {info.world_size} process(es), device {device.type}, "
                   f"{torch.get_num_threads()} CPU thread(s) per process")
        train_ds = load_data_or_exit("--data", args.data, args.format)
        val_ds = load_data_or_exit("--val-data", args.val_data, args.format) if args.val_data else None
        if args.margin and "margin" not in train_ds.column_names:
            raise SystemExit(f"error: --margin given but the training data has no 'margin' column "
                             f"(columns: {train_ds.column_names})")
        try:  # a damaged or incomplete model folder: rmcourse's message, exit code 1
            model = load_reward_model(args.backbone, device=device, seed=args.seed,
                                      max_length=args.max_length)
        except (ValueError, TypeError, FileNotFoundError) as err:
            raise SystemExit(f"error: --backbone: {err}") from None
        if args.freeze_layers is not None:
            try:
                frozen = freeze_lower_layers(model, args.freeze_layers)
            except ValueError as err:
                raise SystemExit(f"error: --freeze-layers: {err}") from None
            _say(info, f"froze {frozen:,} parameters (embeddings + {args.freeze_layers} layers)")
        config = TrainConfig(
            lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, max_steps=args.max_steps,
            warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
            grad_accum_steps=args.grad_accum, max_length=args.max_length,
            use_margin=args.margin, center_rewards_coef=args.center_rewards_coef,
            eval_every=args.eval_every, early_stopping_patience=args.early_stopping_patience,
            group_by_length=args.group_by_length, seed=args.seed,
            progress=args.progress and info.is_main,
            bf16={"auto": "auto", "on": True, "off": False}[args.bf16],
            disable_dropout=not args.keep_dropout,
            prefix_sharing={"auto": "auto", "on": True, "off": False}[args.prefix_sharing],
        )
        try:
            _say(info, describe_choices(config, device, info.world_size, model))
        except ValueError as err:  # --prefix-sharing on for a model it cannot serve
            raise SystemExit(f"error: --prefix-sharing: {err}") from None
        start = time.perf_counter()
        kwargs = {"distributed": info} if info.is_distributed else {}
        result = train_reward_model(model, train_ds, val_ds, config, **kwargs)
        wall = time.perf_counter() - start
        pairs_per_s = result.pairs_per_second * info.world_size
        seen = round(result.pairs_per_second * result.train_seconds) * info.world_size
        _say(info, f"trained {result.n_steps} steps ({seen} pairs seen, from {result.n_train_pairs} "
                   f"training pairs) in {wall:.1f} s, {pairs_per_s:.1f} training pairs/s over "
                   f"{info.world_size} process(es)")
        if result.best_val_accuracy is not None:
            _say(info, f"best validation accuracy {result.best_val_accuracy:.3f} "
                       f"at step {result.best_step}")
        checksums = gather_objects(parameter_checksum(model), info)
        if args.weights_checksum and info.is_main:
            target = Path(args.weights_checksum)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps({"world_size": info.world_size, "checksums": checksums},
                                         indent=2))
            _say(info, f"wrote {len(checksums)} weight checksum(s) to {args.weights_checksum}")
        if args.output and info.is_main:
            metadata = {"trained_with": "rmcourse.train", "steps": result.n_steps,
                        "world_size": info.world_size, "data": args.data,
                        "best_val_accuracy": result.best_val_accuracy,
                        "config": {k: v for k, v in vars(args).items() if k not in ("output",)}}
            model.save_pretrained(args.output, metadata=metadata)
            _say(info, f"saved checkpoint to {args.output}")
        if info.is_distributed:
            torch.distributed.barrier()  # nobody exits before rank 0 has saved
    finally:
        cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
