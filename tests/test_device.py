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


def test_autocast_is_noop_on_cpu():
    with device.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


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
