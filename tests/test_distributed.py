"""Data-parallel helpers, and a real 2-process torchrun run of the CLI (gloo, CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rmcourse.distributed import (DistInfo, default_backend, dist_info_from_env, gather_objects,
                                  parameter_checksum, shard_batches)

ROOT = Path(__file__).resolve().parent.parent


def make_tiny_backbone(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer: trains in milliseconds."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rmcourse.models import bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=1)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_pairs(path: Path, n: int = 48) -> Path:
    """n small trl_standard pairs whose chosen side is the helpful one."""
    topics = ["rain", "bread", "tides", "rust", "sleep", "prime numbers", "bridges", "tea"]
    with path.open("w") as fh:
        for i in range(n):
            topic = topics[i % len(topics)]
            row = {"prompt": f"Question {i}: why do we care about {topic}?",
                   "chosen": f"Because {topic} matters in daily life; here is a clear reason " * (1 + i % 3),
                   "rejected": "No idea."}
            fh.write(json.dumps(row) + "\n")
    return path


# ---------------------------------------------------------------- unit
def test_single_process_info_from_empty_env():
    info = dist_info_from_env({})
    assert info == DistInfo(0, 1, 0)
    assert info.is_main and not info.is_distributed


def test_info_from_torchrun_env():
    info = dist_info_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank) == (1, 2, 1)
    assert info.is_distributed and not info.is_main


@pytest.mark.parametrize("env, problem", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "2"}, "RANK is not set"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "rank must be in"),
    ({"WORLD_SIZE": "0", "RANK": "0"}, "world_size must be >= 1"),
])
def test_bad_env_is_named(env, problem):
    with pytest.raises(ValueError, match=problem):
        dist_info_from_env(env)


def test_distinfo_rejects_non_int():
    with pytest.raises(TypeError, match="rank must be an int"):
        DistInfo(rank="0")  # type: ignore[arg-type]


def test_backend_follows_device():
    assert default_backend("cpu") == "gloo"
    assert default_backend(torch.device("cuda", 0)) == "nccl"


def test_shards_are_disjoint_equal_and_cover_the_even_part():
    batches = [[i] for i in range(7)]
    shards = [shard_batches(batches, DistInfo(r, 3)) for r in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]  # 7 batches: the 7th cannot be split, dropped
    flat = sorted(x for s in shards for b in s for x in b)
    assert flat == list(range(6))
    assert shards[1] == [[1], [4]]


def test_single_process_shard_is_everything():
    assert shard_batches([[1], [2], [3]], DistInfo()) == [[1], [2], [3]]


def test_too_few_batches_for_the_ranks():
    with pytest.raises(ValueError, match="1 batch\\(es\\) cannot be shared by 2 ranks"):
        shard_batches([[0]], DistInfo(0, 2))
    with pytest.raises(TypeError, match="DistInfo"):
        shard_batches([[0]], 2)  # type: ignore[arg-type]


def test_checksum_sees_one_changed_bit_and_ignores_copies():
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    assert parameter_checksum(a) == parameter_checksum(b)
    with torch.no_grad():
        b.bias[0] = torch.nextafter(b.bias[0], torch.tensor(1.0))  # the smallest possible change
    assert parameter_checksum(a) != parameter_checksum(b)


def test_checksum_rejects_non_modules_and_empty_modules():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        parameter_checksum({"w": torch.zeros(1)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no parameters"):
        parameter_checksum(torch.nn.ReLU())


def test_gather_in_one_process_is_a_list_of_one():
    assert gather_objects("x", DistInfo()) == ["x"]


# ---------------------------------------------------------------- torchrun, 2 CPU processes
def test_torchrun_two_ranks_end_with_identical_weights_and_a_reloadable_checkpoint(tmp_path):
    from transformers import AutoModelForSequenceClassification

    backbone = make_tiny_backbone(tmp_path / "tiny")
    data = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "ckpt"
    sums = tmp_path / "sums.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", "-m", "rmcourse.train",
           "--data", str(data), "--backbone", str(backbone), "--output", str(out),
           "--max-steps", "3", "--batch-size", "4", "--max-length", "64", "--lr", "1e-3",
           "--weights-checksum", str(sums), "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout

    report = json.loads(sums.read_text())
    assert report["world_size"] == 2
    first, second = report["checksums"]
    assert first == second, "the two ranks ended with different weights: DDP did not synchronise"

    from rmcourse.models import RewardModel

    saved = RewardModel.from_pretrained(out, device="cpu")
    assert parameter_checksum(saved) == first, "the checkpoint is not the weights the ranks hold"
    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    initial = AutoModelForSequenceClassification.from_pretrained(backbone)
    assert reloaded.config.num_labels == 1
    changed = [n for n, p in reloaded.state_dict().items()
               if n in initial.state_dict() and not torch.equal(p, initial.state_dict()[n])]
    assert changed, "training did not change any weight"
