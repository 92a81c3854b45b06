"""`python -m rmcourse.train`: help, a real 2-step run that writes a reloadable checkpoint, bad args."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rmcourse.train import build_parser, main, parse_world_spec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer (a transformers folder)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rmcourse.models import bundled_model_path

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=1)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_module_help_documents_every_option():
    proc = subprocess.run([sys.executable, "-m", "rmcourse.train", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for option in ("--data", "--format", "--backbone", "--output", "--max-length", "--batch-size",
                   "--lr", "--epochs", "--max-steps", "--grad-accum", "--margin",
                   "--center-rewards-coef", "--val-data", "--eval-every", "--seed",
                   "--weights-checksum", "--freeze-layers", "world:SPLIT:N", "torchrun",
                   "--bf16", "--keep-dropout"):
        assert option in proc.stdout, f"--help does not mention {option}"


def test_two_step_run_writes_a_checkpoint_transformers_reloads(tiny_backbone, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    from rmcourse.distributed import parameter_checksum
    from rmcourse.models import RewardModel

    out = tmp_path / "ckpt"
    sums = tmp_path / "sums.json"
    code = main(["--data", "world:train:24", "--val-data", "world:validation:8",
                 "--backbone", str(tiny_backbone), "--output", str(out), "--max-steps", "2",
                 "--batch-size", "4", "--max-length", "96", "--lr", "1e-3", "--no-progress",
                 "--weights-checksum", str(sums), "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "trained 2 steps" in printed and "saved checkpoint" in printed
    assert "dropout: off while training" in printed and "precision: " in printed
    assert "validation accuracy" in printed

    hf = AutoModelForSequenceClassification.from_pretrained(out)
    assert hf.config.num_labels == 1
    initial = AutoModelForSequenceClassification.from_pretrained(tiny_backbone)
    assert not torch.equal(hf.classifier.weight, initial.classifier.weight), "head never trained"
    saved = RewardModel.from_pretrained(out, device="cpu")
    assert json.loads(sums.read_text()) == {"world_size": 1, "checksums": [parameter_checksum(saved)]}
    meta = json.loads((out / "rmcourse.json").read_text())["metadata"]
    assert meta["steps"] == 2 and meta["trained_with"] == "rmcourse.train"
    # The same rewards through transformers alone and through rmcourse.
    text = saved.tokenizer("What is rain?", "Water falling from clouds.", return_tensors="pt")
    with torch.no_grad():
        direct = hf(**text).logits.squeeze(-1)
        ours = saved(text["input_ids"], text["attention_mask"], text["token_type_ids"])
    torch.testing.assert_close(direct, ours)


def test_a_local_file_in_a_known_format_trains(tiny_backbone, tmp_path, capsys):
    data = ROOT / "tests" / "fixtures" / "trl_standard.jsonl"
    code = main(["--data", str(data), "--format", "trl_standard", "--backbone", str(tiny_backbone),
                 "--max-steps", "1", "--batch-size", "2", "--max-length", "96", "--no-progress"])
    assert code == 0
    assert "trained 1 steps" in capsys.readouterr().out


@pytest.mark.parametrize("args, problem", [
    (["--data", "no/such/file.jsonl"], "--data: no such file or folder 'no/such/file.jsonl'"),
    (["--data", "world:train:8", "--val-data", "missing.json"], "--val-data: no such file or folder"),
    (["--data", "world:dev:8"], "unknown preference-world split 'dev'"),
    (["--data", "world:train:zero"], "N in 'world:train:zero' must be an integer"),
    (["--data", "world:train"], "not of the form world:SPLIT:N"),
    (["--data", "world:train:8", "--format", "xyz"], "--format: unknown format 'xyz'"),
    (["--data", "world:train:8", "--backbone", "gpt9"], "--backbone: unknown backbone 'gpt9'"),
    (["--data", "world:train:8", "--batch-size", "0"], "must be a positive integer, got '0'"),
    (["--data", "world:train:8", "--lr", "-1"], "must be a positive number"),
    (["--data", "world:train:8", "--eval-every", "5"], "--eval-every needs --val-data"),
    (["--data", "world:train:8", "--warmup-ratio", "2"], "--warmup-ratio must be in [0, 1]"),
    ([], "the following arguments are required: --data"),
])
def test_bad_arguments_exit_2_and_name_the_problem(args, problem, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert problem in capsys.readouterr().err


def test_freeze_layers_keeps_the_lower_weights_and_refuses_too_many(tiny_backbone, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "frozen"
    code = main(["--data", "world:train:8", "--backbone", str(tiny_backbone), "--output", str(out),
                 "--max-steps", "2", "--batch-size", "4", "--max-length", "96", "--lr", "1e-2",
                 "--freeze-layers", "1", "--no-progress", "--threads", "1"])
    assert code == 0 and "embeddings + 1 layers" in capsys.readouterr().out
    before = AutoModelForSequenceClassification.from_pretrained(tiny_backbone).state_dict()
    after = AutoModelForSequenceClassification.from_pretrained(out).state_dict()
    assert torch.equal(before["bert.embeddings.word_embeddings.weight"],
                       after["bert.embeddings.word_embeddings.weight"])
    assert torch.equal(before["bert.encoder.layer.0.output.dense.weight"],
                       after["bert.encoder.layer.0.output.dense.weight"])
    assert not torch.equal(before["bert.encoder.layer.1.output.dense.weight"],
                           after["bert.encoder.layer.1.output.dense.weight"])
    with pytest.raises(SystemExit, match=r"--freeze-layers: n_layers must be in \[0, 2\]"):
        main(["--data", "world:train:8", "--backbone", str(tiny_backbone), "--max-steps", "1",
              "--freeze-layers", "3", "--no-progress"])


def test_backbone_folder_without_config_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--data", "world:train:8", "--backbone", str(tmp_path)])
    assert "has no config.json" in capsys.readouterr().err


def test_margin_flag_needs_a_margin_column(tiny_backbone, tmp_path):
    data = tmp_path / "no_margin.jsonl"
    data.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello there!", "rejected": "Go away."}) + "\n")
    with pytest.raises(SystemExit, match="no 'margin' column"):
        main(["--data", str(data), "--backbone", str(tiny_backbone), "--margin", "--max-steps", "1",
              "--no-progress"])


def test_world_spec_parsing():
    assert parse_world_spec("world:train:10") == ("train", 10, 0)
    assert parse_world_spec("world:val:3:7") == ("validation", 3, 7)
    with pytest.raises(ValueError, match="must be >= 1"):
        parse_world_spec("world:test:0")


def test_parser_defaults_are_the_course_defaults():
    args = build_parser().parse_args(["--data", "world:train:8"])
    assert (args.backbone, args.max_length, args.epochs, args.grad_accum, args.seed) == ("minilm", 128, 1.0, 1, 0)
    assert not args.group_by_length and args.progress and args.output is None
    assert args.freeze_layers is None  # every layer trains unless asked
    assert args.bf16 == "auto" and not args.keep_dropout


@pytest.mark.parametrize("flags, env, expected", [
    ([], "1", "precision: bf16 autocast (--bf16 auto; RMCOURSE_BF16=1); dropout: off while training"),
    ([], "0", "precision: float32 (--bf16 auto; RMCOURSE_BF16=0)"),
    (["--bf16", "off"], None, "precision: float32 (--bf16 off)"),
    (["--bf16", "on", "--keep-dropout"], None,
     "precision: bf16 autocast (--bf16 on); dropout: kept (--keep-dropout)"),
])
def test_the_run_says_which_precision_and_dropout_it_chose(tiny_backbone, capsys, monkeypatch,
                                                           flags, env, expected):
    if env is None:
        monkeypatch.delenv("RMCOURSE_BF16", raising=False)
    else:
        monkeypatch.setenv("RMCOURSE_BF16", env)
    monkeypatch.setenv("RMCOURSE_DEVICE", "cpu")
    code = main(["--data", "world:train:8", "--backbone", str(tiny_backbone), "--max-steps", "1",
                 "--batch-size", "4", "--max-length", "96", "--no-progress", "--threads", "1",
                 *flags])
    assert code == 0
    assert expected in capsys.readouterr().out


def test_describe_choices_names_the_cpu_flags(monkeypatch):
    from rmcourse import device
    from rmcourse.train import describe_choices
    from rmcourse.trainer import TrainConfig

    monkeypatch.delenv("RMCOURSE_BF16", raising=False)
    monkeypatch.setattr(device, "cpu_bf16_flags", lambda cpuinfo=None: ["amx_bf16", "avx512_bf16"])
    line = describe_choices(TrainConfig(), torch.device("cpu"))
    assert "bf16 autocast (--bf16 auto; this CPU has bf16 matrix units: amx_bf16, avx512_bf16)" in line
    monkeypatch.setattr(device, "cpu_bf16_flags", lambda cpuinfo=None: [])
    assert "float32 (--bf16 auto; this CPU has no bf16 matrix units)" in \
        describe_choices(TrainConfig(), torch.device("cpu"))


def test_the_run_says_how_it_batches(monkeypatch):
    from rmcourse.train import describe_choices
    from rmcourse.trainer import TrainConfig

    monkeypatch.setenv("RMCOURSE_BF16", "0")
    cpu = torch.device("cpu")
    assert describe_choices(TrainConfig(), cpu).endswith(
        "batches: random, forward in length-sorted chunks of at most 8 rows")
    assert describe_choices(TrainConfig(group_by_length=True), cpu, world_size=2).endswith(
        "batches: grouped by length, one stacked forward")
    assert describe_choices(TrainConfig(), torch.device("cuda")).endswith("one stacked forward")
