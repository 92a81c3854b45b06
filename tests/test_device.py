import pytest
import torch

from rmcourse import device


def test_pick_device_is_cpu_here_or_honours_override(monkeypatch):
    monkeypatch.delenv("RMCOURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else None
    got = device.pick_device()
    assert isinstance(got, torch.device)
    if expected:
        assert got.type == expected
    monkeypatch.setenv("RMCOURSE_DEVICE", "cpu")
    assert device.pick_device().type == "cpu"
    assert device.scaled(1, 2) == 1


def test_bad_override_is_named(monkeypatch):
    monkeypatch.setenv("RMCOURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="RMCOURSE_DEVICE='tpu'"):
        device.pick_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_forcing_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RMCOURSE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no CUDA"):
        device.pick_device()


def test_autocast_scores_in_float32_on_cpu_and_bf16_when_asked():
    with device.autocast("cpu"):  # scoring on a CPU stays float32, bf16 units or not
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with device.autocast("cpu", enabled=True):  # what the trainer uses when bf16 resolves True
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with device.autocast("cpu", enabled=False):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ValueError, match="cuda and cpu only, not on mps"):
        device.autocast("mps", enabled=True)


X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n"
X86_AMX = "flags\t\t: fpu avx512f amx_bf16 amx_tile avx512_bf16\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
OLD = "flags\t\t: fpu sse2 avx2 fma\n"


def test_cpu_bf16_flags_reads_x86_and_arm_cpuinfo():
    assert device.cpu_bf16_flags(X86) == ["avx512_bf16"]
    assert device.cpu_bf16_flags(X86_AMX) == ["amx_bf16", "avx512_bf16"]
    assert device.cpu_bf16_flags(ARM) == ["bf16"]
    assert device.cpu_bf16_flags(OLD) == []
    assert device.cpu_bf16_flags("") == []


def test_bf16_supported_on_cpu_follows_the_flags_and_the_override(monkeypatch):
    monkeypatch.delenv("RMCOURSE_BF16", raising=False)
    monkeypatch.setattr(device, "cpu_bf16_flags", lambda cpuinfo=None: [])
    assert device.bf16_supported("cpu") is False
    monkeypatch.setattr(device, "cpu_bf16_flags", lambda cpuinfo=None: ["avx512_bf16"])
    assert device.bf16_supported("cpu") is True
    monkeypatch.setenv("RMCOURSE_BF16", "0")
    assert device.bf16_supported("cpu") is False
    monkeypatch.setenv("RMCOURSE_BF16", "yes")
    with pytest.raises(ValueError, match="RMCOURSE_BF16='yes' must be '0' or '1'"):
        device.bf16_supported("cpu")
    assert device.bf16_supported("mps") is False


def test_float32_readout_keeps_a_head_out_of_bf16():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 1)
    x = torch.randn(64, 16)
    exact = head(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = head(x)
    assert rounded.dtype == torch.bfloat16  # the problem: rewards on bf16's grid
    device.float32_readout(head)
    device.float32_readout(head)  # a second call adds nothing
    assert len(head._forward_pre_hooks) == 1 and len(head._forward_hooks) == 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = head(x.bfloat16())  # a bf16 input, as the backbone gives under autocast
        assert torch.is_autocast_enabled("cpu")  # switched back on after the head
        after = torch.ones(2, 2) @ torch.ones(2, 2)
    assert kept.dtype == torch.float32 and after.dtype == torch.bfloat16
    torch.testing.assert_close(kept, head(x.bfloat16().float()))
    assert len(set(kept.flatten().tolist())) > len(set(rounded.flatten().tolist()))


def test_float32_readout_restores_autocast_when_the_forward_raises():
    head = device.float32_readout(torch.nn.Linear(4, 1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(RuntimeError):
            head(torch.randn(3, 5))  # wrong width
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_float32_readout_survives_pickling_and_bf16_weights():
    import pickle

    head = device.float32_readout(torch.nn.Linear(4, 1))
    copy = pickle.loads(pickle.dumps(head))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert copy(torch.randn(2, 4)).dtype == torch.float32
    bf16_head = device.float32_readout(torch.nn.Linear(4, 1).bfloat16())  # a bf16 model works
    assert bf16_head(torch.randn(2, 4)).dtype == torch.bfloat16
    with pytest.raises(TypeError, match="torch.nn.Module"):
        device.float32_readout("head")


def test_seed_everything_repeats_and_validates():
    device.seed_everything(3)
    a = torch.rand(3)
    device.seed_everything(3)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(TypeError, match="seed must be an int"):
        device.seed_everything("3")


def test_timer_measures():
    with device.timer() as t:
        sum(range(1000))
    assert t["seconds"] >= 0


@pytest.mark.parametrize("native, expected", [(True, True), (False, False)])
def test_bf16_on_cuda_only_where_it_is_native_not_emulated(monkeypatch, native, expected):
    from rmcourse.device import bf16_supported

    asked = {}

    def is_bf16_supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return native or including_emulation  # a pre-Ampere GPU: emulated yes, native no

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert bf16_supported("cuda") is expected
    assert asked["including_emulation"] is False
