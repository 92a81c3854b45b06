"""Measuring helpers of chapter 04: token counts, memory, MFU, the two forward styles, timing."""
from __future__ import annotations

import os

import pytest
import torch

from rmcourse.throughput import (CompiledRewardModel, Rung, ThroughputReport, compile_counters,
                                 count_parameters, cpu_peak, fastest_steps, measure_interleaved,
                                 measure_training, model_flops_utilization, pad_to_multiple,
                                 peak_bf16_flops, peak_memory, real_and_padded_tokens,
                                 longest_batch, reset_peak_memory, separate_forward, stacked_forward,
                                 tf32_matmuls, training_flops)


@pytest.fixture(scope="module")
def tiny():
    """(RewardModel on a random 2-layer BERT, list of PairCollator batches)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel, bundled_model_path
    from rmcourse.tokenization import PairCollator, tokenize_pairs
    from rmcourse.world import PreferenceWorld

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256,
                        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = RewardModel(BertForSequenceClassification(config), tokenizer)
    tok, _ = tokenize_pairs(PreferenceWorld(0).pairs("train", 12), tokenizer, 192)
    collate = PairCollator(tokenizer, 192)
    rows = tok.to_list()
    batches = [collate(rows[i:i + 4]) for i in range(0, 12, 4)]
    return model, batches


def test_parameters_without_embeddings():
    model = torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Linear(8, 2))
    assert count_parameters(model) == 8 * 2 + 2
    assert count_parameters(model, include_embeddings=True) == 100 * 8 + 18
    model[1].weight.requires_grad_(False)
    assert count_parameters(model) == 2
    with pytest.raises(TypeError, match="torch.nn.Module"):
        count_parameters("model")  # type: ignore[arg-type]


def test_real_and_padded_tokens():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    assert real_and_padded_tokens(mask) == (4, 8)
    with pytest.raises(ValueError, match=r"\[N, L\]"):
        real_and_padded_tokens(torch.ones(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        real_and_padded_tokens([[1, 0]])  # type: ignore[arg-type]


def test_report_rates_and_waste():
    r = ThroughputReport("x", n_steps=2, n_pairs=8, real_tokens=300, padded_tokens=400, seconds=2.0)
    assert r.pairs_per_second == 4.0 and r.tokens_per_second == 150.0
    assert r.padding_waste == pytest.approx(0.25)
    assert r.as_row()["pairs_per_s"] == 4.0


def test_peak_memory_sees_a_big_allocation_on_cpu():
    reset_peak_memory("cpu")
    before, kind = peak_memory("cpu")
    if before is None:
        pytest.skip("no /proc/self/status on this OS")
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    block += 1
    after, _ = peak_memory("cpu")
    del block
    assert "RSS" in kind
    assert after - before >= 48 * 2**20


def test_peak_flops_table_and_mfu():
    assert peak_bf16_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989e12)
    assert peak_bf16_flops("NVIDIA H100 PCIe") == pytest.approx(756e12)
    assert peak_bf16_flops("NVIDIA A100-SXM4-40GB") == pytest.approx(312e12)
    assert peak_bf16_flops("Some Future GPU") is None
    # whole-word matching: an L40 is not an L4, a GH200 is not looked up as "H200"
    assert peak_bf16_flops("NVIDIA L40") == pytest.approx(181e12)
    assert peak_bf16_flops("NVIDIA L40S") == pytest.approx(362e12)
    assert peak_bf16_flops("NVIDIA L4") == pytest.approx(121e12)
    assert peak_bf16_flops("NVIDIA H200") == pytest.approx(989e12)
    assert peak_bf16_flops("NVIDIA GH200 480GB") == pytest.approx(989e12)
    assert peak_bf16_flops("NVIDIA H100 NVL") == pytest.approx(835e12)
    # 6 * 1e9 params * 1e4 tokens/s = 6e13 FLOP/s, a tenth of a 6e14 peak
    assert model_flops_utilization(10**9, 1e4, 6e14) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="n_params"):
        model_flops_utilization(0, 1.0, 1.0)
    with pytest.raises(ValueError, match="peak_flops must be > 0"):
        model_flops_utilization(10, 1.0, 0.0)
    with pytest.raises(TypeError, match="device_name"):
        peak_bf16_flops(None)  # type: ignore[arg-type]


def test_stacked_and_separate_forwards_give_the_same_rewards(tiny):
    model, batches = tiny
    model.eval()
    with torch.no_grad():
        for batch in batches:
            c1, r1 = stacked_forward(model, batch)
            c2, r2 = separate_forward(model, batch, trim=True)
            c3, r3 = separate_forward(model, batch, trim=False)
            assert c1.shape == (4,)
            torch.testing.assert_close(c1, c2, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(r1, r2, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(c1, c3, atol=1e-5, rtol=1e-4)


def test_forward_rejects_an_odd_batch(tiny):
    model, batches = tiny
    odd = {k: v[:3] for k, v in batches[0].items()}
    with pytest.raises(ValueError, match="even number of rows"):
        stacked_forward(model, odd)
    with pytest.raises(ValueError, match="'input_ids'"):
        separate_forward(model, {"attention_mask": odd["attention_mask"]})


def test_measure_training_counts_only_the_timed_steps(tiny):
    model, batches = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = measure_training("stacked", model, batches, warmup_steps=1, lr=1e-3)
    assert report.n_steps == 2 and report.n_pairs == 8
    real = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    assert report.real_tokens == real
    assert report.padded_tokens == sum(b["attention_mask"].numel() for b in batches[1:])
    assert report.seconds > 0 and report.mfu is None
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), "no update"
    model.load_state_dict(before)


def test_measure_training_validates(tiny):
    model, batches = tiny
    with pytest.raises(ValueError, match="need more than warmup_steps=3"):
        measure_training("x", model, batches, warmup_steps=3)
    with pytest.raises(ValueError, match="autocast_dtype must be torch.bfloat16 or torch.float16"):
        measure_training("x", model, batches, autocast_dtype=torch.float64, device="cpu")
    with pytest.raises(ValueError, match="needs a CUDA or CPU device"):
        measure_training("x", model, batches, autocast_dtype=torch.bfloat16, device="meta")
    with pytest.raises(ValueError, match="batch 1"):
        measure_training("x", model, [batches[0], {"input_ids": torch.zeros(3, 2)}])


def test_measure_training_counts_the_positions_the_model_computed(tiny):
    model, batches = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stacked = measure_training("stacked", model, batches, stacked_forward, lr=1e-6)
    model.load_state_dict(before)
    separate = measure_training("separate", model, batches, separate_forward, lr=1e-6)
    model.load_state_dict(before)
    assert separate.real_tokens == stacked.real_tokens
    # each half trimmed to its own longest row: fewer positions than the shared width
    assert separate.padded_tokens < stacked.padded_tokens
    assert separate.padding_waste < stacked.padding_waste


def test_measure_training_times_every_step(tiny):
    model, batches = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = measure_training("stacked", model, batches, warmup_steps=1, lr=1e-3)
    assert len(report.step_seconds) == report.n_steps == 2
    assert all(t > 0 for t in report.step_seconds)
    assert report.seconds == pytest.approx(sum(report.step_seconds))
    assert "step_seconds" not in report.as_row()  # rows stay flat for pandas
    model.load_state_dict(before)


def _report(steps, name="grouped", peak=None, mfu=None):
    return ThroughputReport(name=name, n_steps=len(steps), n_pairs=4 * len(steps),
                            real_tokens=100, padded_tokens=120, seconds=sum(steps),
                            peak_memory_bytes=peak, mfu=mfu, step_seconds=tuple(steps))


def test_fastest_steps_keeps_each_steps_fastest_round():
    # round 1 was disturbed during step 2, round 2 during step 1: neither round alone is clean
    combined = fastest_steps([_report([1.0, 3.0, 1.0], peak=10, mfu=0.2),
                              _report([2.5, 1.0, 1.1], peak=12)])
    assert combined.step_seconds == (1.0, 1.0, 1.0) and combined.seconds == pytest.approx(3.0)
    assert combined.pairs_per_second == pytest.approx(12 / 3.0)
    assert combined.peak_memory_bytes == 12
    assert combined.mfu == pytest.approx(0.2 * 5.0 / 3.0)  # MFU scales with the speed
    assert fastest_steps([_report([1.0, 2.0])]).step_seconds == (1.0, 2.0)


def test_fastest_steps_refuses_rounds_of_different_work():
    with pytest.raises(ValueError, match="rounds differ in n_steps"):
        fastest_steps([_report([1.0, 1.0]), _report([1.0])])
    with pytest.raises(ValueError, match="rounds differ in name"):
        fastest_steps([_report([1.0]), _report([1.0], name="random")])
    with pytest.raises(ValueError, match="no per-step times"):
        fastest_steps([ThroughputReport("x", 2, 8, 10, 12, 1.0)])
    with pytest.raises(TypeError, match="non-empty sequence"):
        fastest_steps([])


def test_measure_interleaved_takes_turns_step_by_step(tiny):
    model, batches = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def logged(tag, forward):
        def run(m, batch, device):
            calls.append(tag)
            return forward(m, batch, device)
        return run

    rungs = {"stacked": (batches, logged("S", stacked_forward)),
             "separate": (batches[:2], logged("T", separate_forward))}
    reports = measure_interleaved(model, rungs, rounds=2)
    # warm-ups; round 1: S T S (separate has one timed step); round 2: S T S, during which
    # each rung's peak memory is taken (no extra step)
    assert "".join(calls) == "ST" + "STS" + "STS"
    assert list(reports) == ["stacked", "separate"]
    stacked, separate = reports["stacked"], reports["separate"]
    assert (stacked.n_steps, stacked.n_pairs, separate.n_steps) == (2, 8, 1)
    assert stacked.real_tokens == sum(int(b["attention_mask"].sum()) for b in batches[1:])
    assert stacked.padded_tokens == sum(b["attention_mask"].numel() for b in batches[1:])
    # the trimmed halves compute fewer positions than the stacked batch holds
    assert separate.padded_tokens <= batches[1]["attention_mask"].numel()
    assert separate.real_tokens == int(batches[1]["attention_mask"].sum())
    if os.path.exists("/proc/self/status"):
        assert stacked.peak_memory_bytes > 0 and stacked.memory_kind.startswith("process peak RSS")
    assert len(stacked.step_seconds) == 2 and stacked.seconds == pytest.approx(sum(stacked.step_seconds))
    for k, v in model.state_dict().items():  # the shared weights are put back
        assert torch.equal(before[k], v)


def test_measure_interleaved_validates(tiny):
    model, batches = tiny
    with pytest.raises(ValueError, match="non-empty mapping"):
        measure_interleaved(model, {})
    with pytest.raises(ValueError, match="warm-up batch\\(es\\) and at least one timed batch"):
        measure_interleaved(model, {"a": (batches[:1], stacked_forward)})
    with pytest.raises(TypeError, match="expected a Rung or \\(batches, forward\\)"):
        measure_interleaved(model, {"a": batches})
    with pytest.raises(ValueError, match="rung 'a', batch 1"):
        measure_interleaved(model, {"a": ([batches[0], {"input_ids": torch.zeros(3, 2)}],
                                          stacked_forward)})
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        measure_interleaved(model, {"a": (batches, stacked_forward)}, rounds=0)


# ---------------------------------------------------------------- CPU peak, FLOPs, precision
ZEN4 = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC
cpu MHz		: 2596.146
siblings	: 2
cpu cores	: 2
flags		: fpu sse sse2 avx fma avx2 avx512f avx512_bf16 avx512_vnni

processor	: 1
vendor_id	: AuthenticAMD
"""


def test_cpu_peak_is_cores_times_clock_times_flops_per_cycle():
    peak = cpu_peak(ZEN4, threads=2, max_clock_khz=0)
    assert peak.microarchitecture == "AMD Zen 4" and peak.cores == 2
    assert peak.clock_source == "/proc/cpuinfo cpu MHz"
    assert peak.flops(torch.float32) == pytest.approx(2 * 2.596146e9 * 32)
    assert peak.flops(torch.bfloat16) == pytest.approx(2 * 2.596146e9 * 64)
    # cpufreq's maximum clock wins over the (current or nominal) "cpu MHz"
    assert cpu_peak(ZEN4, threads=1, max_clock_khz=3_700_000).flops() == pytest.approx(3.7e9 * 32)
    # two hyper-threads share one core's FMA units
    smt = ZEN4.replace("siblings\t: 2", "siblings\t: 4")
    assert cpu_peak(smt, threads=4, max_clock_khz=0).cores == 2
    zen3 = ZEN4.replace(" avx512f avx512_bf16", "")
    assert cpu_peak(zen3, threads=1, max_clock_khz=0).microarchitecture == "AMD Zen 3"
    assert cpu_peak(zen3, threads=1, max_clock_khz=0).flops(torch.bfloat16) is None
    amx = ZEN4.replace("AuthenticAMD", "GenuineIntel").replace("cpu family\t: 25", "cpu family\t: 6") \
        .replace("avx512_bf16", "avx512_bf16 amx_bf16 amx_tile")
    assert cpu_peak(amx, threads=1, max_clock_khz=0).flops(torch.bfloat16) == pytest.approx(2.596146e9 * 1024)
    # a CPU whose per-cycle numbers the course cannot cite: no made-up peak
    assert cpu_peak(ZEN4.replace("AuthenticAMD", "GenuineIntel"), threads=1, max_clock_khz=0) is None
    with pytest.raises(ValueError, match="threads must be a positive int"):
        cpu_peak(ZEN4, threads=0)
    with pytest.raises(ValueError, match="float32 or torch.bfloat16"):
        peak.flops(torch.float16)


def test_training_flops_counts_the_recomputed_forward():
    assert training_flops(10, 100) == 6 * 10 * 100
    assert training_flops(10, 100, recompute_forward=True) == 8 * 10 * 100
    with pytest.raises(ValueError, match="n_params"):
        training_flops(0, 1)
    with pytest.raises(ValueError, match="tokens"):
        training_flops(1, -1)


def test_tf32_is_switched_through_the_new_api_and_restored():
    matmul = torch.backends.cuda.matmul
    before = (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    with tf32_matmuls():
        assert matmul.fp32_precision == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    assert (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == before
    torch.get_float32_matmul_precision()  # raises if legacy and new settings were left mixed
    with pytest.raises(KeyError):
        with tf32_matmuls():
            raise KeyError("boom")
    assert matmul.fp32_precision == before[0], "an error inside the block must still restore"


def test_pad_to_multiple_rounds_the_width_up_with_the_pad_id(tiny):
    _, batches = tiny
    batch = batches[0]
    width = batch["input_ids"].shape[1]
    out = pad_to_multiple(batch, 64, pad_token_id=7)
    new = out["input_ids"].shape[1]
    assert new % 64 == 0 and width <= new < width + 64
    assert torch.equal(out["input_ids"][:, :width], batch["input_ids"])
    assert (out["input_ids"][:, width:] == 7).all() and (out["attention_mask"][:, width:] == 0).all()
    assert (out["token_type_ids"][:, width:] == 0).all()
    assert torch.equal(out["margin"], batch["margin"])  # other keys pass through
    assert pad_to_multiple(out, 64, 7)["input_ids"].shape == out["input_ids"].shape
    with pytest.raises(ValueError, match="multiple must be a positive int"):
        pad_to_multiple(batch, 0, 7)
    with pytest.raises(TypeError, match="pad_token_id"):
        pad_to_multiple(batch, 8, None)  # type: ignore[arg-type]


def test_padding_to_a_multiple_keeps_the_rewards(tiny):
    model, batches = tiny
    model.eval()
    with torch.no_grad():
        for a, b in zip(stacked_forward(model, batches[0]), stacked_forward(model, pad_to_multiple(batches[0], 64, 0))):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_compiled_model_makes_one_graph_per_padded_width_and_never_breaks(tiny):
    # backend="eager" traces with dynamo exactly as inductor would, without generating kernels:
    # this is what the GPU compile rung relies on (fullgraph, one graph per width).
    model, batches = tiny
    torch._dynamo.reset()
    compiled = CompiledRewardModel(model, backend="eager")
    padded = [pad_to_multiple(b, 64, 0) for b in batches]
    widths = {b["input_ids"].shape[1] for b in padded}
    before = compile_counters()
    for batch in padded + padded:
        chosen, rejected = stacked_forward(compiled, batch)
        (chosen - rejected).sum().backward()
    after = compile_counters()
    assert after["graphs"] - before["graphs"] == len(widths)
    assert after["graph_breaks"] == before["graph_breaks"]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(stacked_forward(compiled, padded[0])[0],
                                   stacked_forward(model, padded[0])[0], atol=1e-5, rtol=1e-4)
    model.zero_grad(set_to_none=True)
    with pytest.raises(TypeError, match="RewardModel"):
        CompiledRewardModel(torch.nn.Linear(2, 2))
    pooling = model.pooling
    try:
        model.pooling = "mean"  # the head transformers compiles reads one token, not the mean
        with pytest.raises(ValueError, match="pooling='mean'"):
            CompiledRewardModel(model, backend="eager")
    finally:
        model.pooling = pooling


def test_measure_training_runs_bf16_autocast_on_cpu(tiny):
    model, batches = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = measure_training("bf16", model, batches, autocast_dtype=torch.bfloat16, device="cpu")
    assert report.n_steps == 2 and report.seconds > 0
    model.load_state_dict(before)


def test_measure_interleaved_shares_one_optimizer_and_applies_each_rungs_settings(tiny, monkeypatch):
    import rmcourse.trainer

    model, batches = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    made = []
    real_adamw = rmcourse.trainer.adamw
    monkeypatch.setattr(rmcourse.trainer, "adamw", lambda *a, **k: made.append(1) or real_adamw(*a, **k))
    entered, dtypes = [], []

    class Flag:
        def __enter__(self):
            entered.append("in")

        def __exit__(self, *exc):
            entered.append("out")

    def spy(m, batch, device):
        dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return stacked_forward(m, batch, device)

    rungs = {"plain": Rung(batches, spy),
             "bf16": Rung(batches, spy, warmup=2, autocast_dtype=torch.bfloat16, context=Flag)}
    reports = measure_interleaved(model, rungs, rounds=1, n_params_for_mfu=1000,
                                  peak_flops={"plain": 1e9, "bf16": None})
    assert len(made) == 1, "one optimizer for all rungs: peaks then hold one optimizer state"
    assert reports["plain"].n_steps == 2 and reports["bf16"].n_steps == 1  # warmup=2 of 3 batches
    # the context wraps every step of its rung (2 warm-ups, 1 timed, 1 memory step), never others
    assert entered == ["in", "out"] * 4
    assert dtypes.count(torch.bfloat16) == 4 and dtypes.count(None) == 1 + 2 + 1
    assert reports["plain"].mfu == pytest.approx(6 * 1000 * reports["plain"].tokens_per_second / 1e9)
    assert reports["bf16"].mfu is None  # no peak given for it
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v)


def test_measure_interleaved_counts_tokens_through_a_rungs_own_model(tiny):
    model, batches = tiny
    compiled = CompiledRewardModel(model, backend="eager")
    reports = measure_interleaved(model, {"compiled": Rung(batches, model=compiled)}, rounds=1)
    assert reports["compiled"].real_tokens == sum(int(b["attention_mask"].sum()) for b in batches[1:])
    with pytest.raises(ValueError, match="warmup must be an int >= 1"):
        measure_interleaved(model, {"a": Rung(batches, warmup=0)})
    with pytest.raises(ValueError, match="needs 3 warm-up batch"):
        measure_interleaved(model, {"a": Rung(batches, warmup=3)})
    with pytest.raises(ValueError, match="rung 'a': autocast_dtype must be"):
        measure_interleaved(model, {"a": Rung(batches, autocast_dtype=torch.float64)})


def test_measure_interleaved_takes_the_peak_on_the_longest_batch(tiny, monkeypatch):
    model, batches = tiny
    short = {k: v[:, :8] if v.dim() == 2 else v for k, v in batches[1].items()}
    short["attention_mask"] = torch.ones_like(short["attention_mask"])
    widths = []

    def logged(m, batch, device):
        widths.append(batch["input_ids"].shape[1])
        return stacked_forward(m, batch, device)

    longest = max(b["input_ids"].shape[1] for b in batches)
    plan = [batches[0], short, *batches]
    measure_interleaved(model, {"a": (plan, logged)}, rounds=1)
    # warm-up, the timed steps in order, then one untimed step on the widest timed batch
    assert widths[-1] == longest and widths[1] == 8 and len(widths) == len(plan) + 1
    # with two rounds the peak is read during the last round's step of that batch
    import rmcourse.throughput as throughput

    reset_calls = []
    widths.clear()
    monkeypatch.setattr(throughput, "reset_peak_memory",
                        lambda device: reset_calls.append(len(widths)) or reset_peak_memory(device))
    report = measure_interleaved(model, {"a": (plan, logged)}, rounds=2)["a"]
    assert len(widths) == 1 + 2 * (len(plan) - 1)  # no extra step
    assert len(reset_calls) == 1 and widths[reset_calls[0]] == longest
    if os.path.exists("/proc/self/status"):
        assert report.peak_memory_bytes > 0
    assert longest_batch([short, *batches])["input_ids"].shape[1] == longest
    with pytest.raises(ValueError, match="no batches"):
        longest_batch([])
