"""models/device.py: a device name is checked before any work, with a message naming what to use."""

import pytest
import torch

from catviz.models.device import resolve_device


@pytest.mark.parametrize("name", ["banana", "tpu9", "meta", "xla"])
def test_devices_catviz_does_not_run_on_are_refused_briefly(name):
    with pytest.raises(ValueError) as error:
        resolve_device(name)
    message = str(error.value)
    assert message == f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps"


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


def test_a_cuda_index_beyond_the_machine_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="'cuda:3': this machine has 1 CUDA device"):
        resolve_device("cuda:3")
