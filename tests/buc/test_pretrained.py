"""Pretrained weights: the real loading code with a fabricated cache file, a path, and the
missing case offline."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from buc import models
from buc.models import PretrainedWeightsMissing, imagenet_weights_path


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path
    torch.hub.set_dir(old)


def planted_state():
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["conv1.weight"].fill_(0.125)
    return state


def test_imagenet_weights_from_the_torch_cache(torch_home):
    path, url = imagenet_weights_path(18)
    assert path == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert "resnet18-f37072fd.pth" in url                      # IMAGENET1K_V1, not V2
    path.parent.mkdir(parents=True)
    torch.save(planted_state(), path)
    m = models.create("resnet18", pretrained="imagenet")
    assert torch.all(m.CNN.base.conv1.weight == 0.125)
    assert imagenet_weights_path(50)[0].name == "resnet50-0676ba61.pth"


def test_weights_from_a_path(tmp_path):
    p = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in planted_state().items()}}, p)
    m = models.create("resnet18", pretrained=str(p))
    assert torch.all(m.CNN.base.conv1.weight == 0.125)
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        models.create("resnet18", pretrained=str(tmp_path / "nope.pth"))
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(ValueError, match="do not fit ResNet-18"):
        models.create("resnet18", pretrained=str(tmp_path / "r50.pth"))


def test_missing_weights_offline_name_the_file(torch_home, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsMissing) as exc:
        models.create("avg_pool", pretrained="imagenet")
    msg = str(exc.value)
    assert str(torch_home / "hub" / "checkpoints" / "resnet50-0676ba61.pth") in msg
    assert "--pretrained none" in msg and "TORCH_HOME" in msg


def test_random_init_is_the_originals_reset():
    torch.manual_seed(0)
    m = models.create("resnet18", pretrained="none")
    bn = m.CNN.base.bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    w = m.CNN.base.layer1[0].conv1.weight            # Kaiming normal, fan_out = 64 * 3 * 3
    assert abs(w.std().item() - (2 / (64 * 9)) ** 0.5) < 0.01
    with pytest.raises(KeyError, match="valid: avg_pool, resnet101"):
        models.create("resnet19")


def test_a_buc_checkpoint_gives_its_backbone(tmp_path):
    torch.manual_seed(0)
    src = models.create("resnet18", pretrained="none", embedding_size=8)
    torch.save({"model": src.state_dict(), "step": 3}, tmp_path / "model_best.pth.tar")
    m = models.create("resnet18", pretrained=str(tmp_path / "model_best.pth.tar"), embedding_size=8)
    assert torch.equal(m.CNN.base.layer4[1].conv2.weight, src.CNN.base.layer4[1].conv2.weight)
