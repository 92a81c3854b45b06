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
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer: trains in milliseconds.

    Dropout is off, so two runs that see the same batches compute the same gradients whatever
    the trainer's dropout default (ranks seed their RNGs alike; one process does not)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rmcourse.models import bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
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


def test_a_rank_without_its_own_gpu_is_refused_with_the_fix(monkeypatch):
    # torchrun --nproc_per_node=2 on a one-GPU machine: rank 1 would ask for cuda:1
    from rmcourse.distributed import init_distributed

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="LOCAL_RANK=1 needs GPU 1.*1 visible CUDA.*RMCOURSE_DEVICE=cpu"):
        init_distributed(device="cuda")


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


def test_two_ranks_train_on_different_shards_like_one_process_with_accumulation(tmp_path):
    """Equal checksums only prove the ranks stayed in sync. Different shards: 2 ranks x 2 pairs
    must give the update of ONE process that accumulates the same 2 micro-batches per step
    (rank r takes every 2nd batch from r; the process takes batches 2k and 2k+1 at step k)."""
    backbone = make_tiny_backbone(tmp_path / "tiny")
    data = write_pairs(tmp_path / "pairs.jsonl")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "RMCOURSE_DEVICE": "cpu"}
    common = ["-m", "rmcourse.train", "--data", str(data), "--backbone", str(backbone),
              "--max-steps", "3", "--max-length", "64", "--lr", "1e-3", "--threads", "1",
              "--no-progress", "--batch-size", "2"]
    ddp = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc_per_node=2", *common, "--output", str(tmp_path / "ddp")],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    single = subprocess.run([sys.executable, *common, "--grad-accum", "2",
                             "--output", str(tmp_path / "single")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out, err = ddp.communicate(timeout=120)
    assert ddp.returncode == 0, out[-2000:] + err[-2000:]
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-2000:]

    from rmcourse.models import RewardModel

    start = RewardModel.from_pretrained(backbone, device="cpu").state_dict()
    a = RewardModel.from_pretrained(tmp_path / "ddp", device="cpu").state_dict()
    b = RewardModel.from_pretrained(tmp_path / "single", device="cpu").state_dict()
    moved = max(float((a[k].float() - start[k].float()).abs().max()) for k in start)
    gap = max(float((a[k].float() - b[k].float()).abs().max()) for k in start)
    assert moved > 1e-4, "training did not move the weights"
    assert gap < 1e-3 * moved, f"DDP and accumulation differ by {gap:.2e} (weights moved {moved:.2e})"
