"""The video model as the original builds it, and the pretrained-weights loading code."""

import pytest
import torch
import torch.nn.functional as F
import torchvision

from auxusl.errors import PretrainedWeightsError
from auxusl.models import create, create_teacher, ema_decay, update_teacher
from auxusl.utils.runfiles import RunError


def test_stem_has_no_relu_and_last_stride_is_two():
    m = create("resnet18bnn", 5, "none")
    assert [type(x).__name__ for x in m.base[:3]] == ["Conv2d", "BatchNorm2d", "MaxPool2d"]
    assert not any(isinstance(x, torch.nn.ReLU) for x in m.base[:3])
    with torch.no_grad():
        assert m.base(torch.zeros(1, 3, 64, 32)).shape[2:] == (2, 1)  # /32: last stride 2
    m1 = create("resnet50bnn", 5, "none", last_stride=1)
    with torch.no_grad():
        assert m1.base(torch.zeros(1, 3, 64, 32)).shape[1:] == (2048, 4, 2)


def test_outputs_in_train_and_eval_mode():
    torch.manual_seed(0)
    m = create("resnet18bnn", 7, "none")
    clips = torch.randn(3, 4, 3, 64, 32)
    m.eval()
    with torch.no_grad():
        inference, raw = m(clips)
        x, bn = m.frame_features(clips.flatten(0, 1))
    torch.testing.assert_close(raw, x.view(3, 4, -1).mean(1))  # raw GAP features, averaged
    torch.testing.assert_close(
        inference, F.normalize(bn).view(3, 4, -1).mean(1)
    )  # frame-normalised, averaged
    assert not torch.allclose(inference.norm(dim=1), torch.ones(3))  # not re-normalised after averaging
    m.train()
    f, logits = m(clips)
    assert f.shape == (3, 512) and logits.shape == (3, 7)
    assert m.classifier.bias is None and not m.feat_bn.bias.requires_grad


def test_teacher_ema():
    s = create("resnet18bnn", 3, "none")
    t = create_teacher(s)
    assert all(not p.requires_grad for p in t.parameters())
    assert ema_decay(0) == 0.0 and ema_decay(1) == 0.5 and ema_decay(10_000) == 0.999
    with torch.no_grad():
        for p in s.parameters():
            p.add_(1.0)
    before = [p.clone() for p in t.parameters()]
    update_teacher(s, t, step=3, max_decay=0.999)  # alpha = 0.75
    for b, p, q in zip(before, t.parameters(), s.parameters()):
        torch.testing.assert_close(p, 0.75 * b + 0.25 * q)


def test_pretrained_weights_from_a_file_and_the_cache(tmp_path, monkeypatch):
    ref = torchvision.models.resnet18()
    torch.nn.init.constant_(ref.conv1.weight, 0.125)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    m = create("resnet18bnn", 3, str(path))
    assert torch.all(m.base[0].weight == 0.125)
    # torchvision's cache: $TORCH_HOME/hub/checkpoints/<official file name>
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    cache = tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cache.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), cache)
    assert torch.all(create("resnet18bnn", 3, "imagenet").base[0].weight == 0.125)


def test_missing_weights_offline_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(
        torchvision.models.ResNet50_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline
    )
    with pytest.raises(
        PretrainedWeightsError,
        match=r"Put resnet50-0676ba61.pth .* at .*empty/hub/checkpoints/"
        r"resnet50-0676ba61.pth.*PRETRAIN False",
    ):
        create("resnet50bnn", 3, "imagenet")


def test_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match="do not fit this backbone"):
        create("resnet18bnn", 3, str(path))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match=r"cannot (read checkpoint|load) .*bad.pth"):  # runfiles' wording
        create("resnet18bnn", 3, str(bad))
