"""GeM pooling, the ReID ResNet, the mean teacher and the pretrained-weights loading."""
import math
import urllib.error

import pytest
import torch
import torchvision

from cdsm import models
from cdsm.errors import PretrainedWeightsError
from cdsm.models import GeneralizedMeanPoolingP, create_teacher, ema_decay, update_teacher
from cdsm.models import resnet as resnet_module


def test_gem_hand_worked():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    gem = GeneralizedMeanPoolingP(3.0)
    # ((1 + 8 + 27 + 64) / 4) ^ (1/3) = 25 ^ (1/3)
    assert math.isclose(gem(x).item(), 25 ** (1 / 3), rel_tol=1e-6)
    gem.p.data.fill_(1.0)
    assert math.isclose(gem(x).item(), 2.5, rel_tol=1e-6)         # p = 1: average pooling
    # the clamp: negative activations count as eps
    y = torch.tensor([-5.0, 8.0]).view(1, 1, 1, 2)
    assert math.isclose(GeneralizedMeanPoolingP(3.0)(y).item(), (512 / 2) ** (1 / 3), rel_tol=1e-5)


def test_gem_p_is_learnable_and_shared():
    gem = GeneralizedMeanPoolingP()
    assert gem.p.shape == (1,) and gem.p.item() == 3.0
    out = gem(torch.rand(2, 5, 3, 3) + 0.1)
    assert out.shape == (2, 5, 1, 1)
    out.sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs().item() > 0


def test_resnet50_last_stride_neck_and_outputs():
    torch.manual_seed(0)
    m = models.create("resnet50", pretrained="none")
    assert m.num_features == 2048 and isinstance(m.gap, GeneralizedMeanPoolingP)
    assert m.base[-1][0].conv2.stride == (1, 1) and m.base[-1][0].downsample[0].stride == (1, 1)
    x = torch.randn(2, 3, 64, 32)
    assert m.base(x).shape == (2, 2048, 4, 2)     # stride 16: 256 x 128 would give 16 x 8
    assert not m.feat_bn.bias.requires_grad and m.feat_bn.weight.requires_grad
    m.eval()
    f = m(x)
    assert f.shape == (2, 2048) and torch.allclose(f.norm(dim=1), torch.ones(2), atol=1e-5)
    m.train()
    f = m(torch.randn(4, 3, 64, 32))
    assert torch.allclose(f.norm(dim=1), torch.ones(4), atol=1e-5)


def test_resnet18_keeps_stride_2_as_the_original():
    m = models.create("resnet18", pretrained="none", pooling_type="avg", num_features=64)
    assert m.base(torch.randn(1, 3, 64, 32)).shape == (1, 512, 2, 1)
    assert m.num_features == 64
    m.eval()
    assert m(torch.randn(2, 3, 64, 32)).shape == (2, 64)


def test_ibn_a_structure():
    m = models.create("resnet_ibn50a", pretrained="none")
    bn1 = m.base[4][0].bn1
    assert type(bn1).__name__ == "IBN" and bn1.IN.num_features == 32 and bn1.BN.num_features == 32
    assert isinstance(m.base[7][0].bn1, torch.nn.BatchNorm2d)   # layer4 keeps BN
    assert "base.4.0.bn1.IN.weight" in m.state_dict()


def test_mean_teacher_ema():
    assert ema_decay(0) == 0.0 and ema_decay(1) == 0.5 and ema_decay(10 ** 6) == 0.999
    s = torch.nn.Linear(2, 1)
    t = create_teacher(s)
    assert all(not p.requires_grad for p in t.parameters())
    with torch.no_grad():
        s.weight.fill_(1.0)
        t.weight.fill_(3.0)
    update_teacher(s, t, step=3)           # alpha = 0.75
    assert torch.allclose(t.weight, torch.full_like(t.weight, 0.75 * 3 + 0.25 * 1))
    update_teacher(s, t, step=0)           # alpha = 0: a copy
    assert torch.equal(t.weight, s.weight)


def test_teacher_buffers_are_not_averaged():
    s = torch.nn.BatchNorm1d(2)
    t = create_teacher(s)
    t.running_mean.fill_(5.0)
    update_teacher(s, t, step=0)
    assert torch.equal(t.running_mean, torch.full((2,), 5.0))


# ----------------------------------------------------------------------------- pretrained weights
@pytest.fixture
def fake_imagenet(tmp_path, monkeypatch):
    """A fabricated resnet18-f37072fd.pth in a fresh TORCH_HOME cache (saved from a random model)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch" / "hub"))
    sd = torchvision.models.resnet18(weights=None).state_dict()
    sd["conv1.weight"].fill_(0.125)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    path = tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    path.parent.mkdir(parents=True)
    torch.save(sd, path)
    return path


def test_imagenet_weights_from_the_cache(fake_imagenet):
    m = models.create("resnet18", pretrained="imagenet")
    assert torch.all(m.base[0].weight == 0.125)


def test_pretrained_path_and_dataparallel_checkpoint(tmp_path):
    sd = torchvision.models.resnet18(weights=None).state_dict()
    sd["layer1.0.conv1.weight"].fill_(-0.5)
    path = tmp_path / "w.pth.tar"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    m = models.create("resnet18", pretrained=str(path))
    assert torch.all(m.base[4][0].conv1.weight == -0.5)


def test_missing_weights_offline_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "empty"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline, raising=False)
    with pytest.raises(PretrainedWeightsError) as err:
        models.create("resnet50", pretrained="imagenet")
    msg = str(err.value)
    assert "resnet50-0676ba61.pth" in msg and str(tmp_path / "empty" / "checkpoints") in msg
    assert "--pretrained none" in msg


def test_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match="do not fit"):
        models.create("resnet18", pretrained=str(path))
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        models.create("resnet18", pretrained=str(tmp_path / "nope.pth"))


def test_ibn_weights_missing_names_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(resnet_module, "EXAMPLES_PRETRAINED", tmp_path / "pretrained")
    with pytest.raises(PretrainedWeightsError, match="resnet50_ibn_a-d9d0bb7b.pth"):
        models.create("resnet_ibn50a", pretrained="imagenet")


def test_unknown_arch():
    with pytest.raises(ValueError, match="valid: resnet101"):
        models.create("resnet51", pretrained="none")
