"""End2End_AvgPooling: shapes, frame averaging, normalisation, dropout position, frozen layers."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from buc.bottom_up import BottomUp
from buc.models import create


def test_frame_averaging_and_l2_normalised_pool5():
    torch.manual_seed(0)
    m = create("resnet18", pretrained="none", embedding_size=32).eval()
    x = torch.randn(2, 3, 3, 64, 32)                      # 2 tracklets x 3 frames
    with torch.no_grad():
        emb, e = m(x)
        per_frame = m.CNN(x.reshape(6, 3, 64, 32)).view(2, 3, -1)
    assert emb.shape == (2, 32) and e.shape == (2, 512)
    assert torch.allclose(e, F.normalize(per_frame.mean(dim=1), dim=1), atol=1e-6)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)      # eval: no dropout
    assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)


def test_dropout_comes_after_normalisation():
    torch.manual_seed(0)
    m = create("resnet18", pretrained="none", embedding_size=256, dropout=0.5).train()
    emb, _ = m(torch.randn(4, 1, 3, 64, 32))
    zeros = (emb == 0).float().mean().item()
    assert 0.3 < zeros < 0.7                                # about half the units dropped
    kept = emb[emb != 0]
    # surviving units are scaled by 1 / (1 - p) = 2: the vector is no longer unit-norm
    assert not torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-2)
    assert kept.abs().max() <= 2.0 + 1e-5


def test_resnet50_fixed_layers_as_the_original():
    m = create("avg_pool", pretrained="none", fixed_layer=True)
    assert m.CNN.out_features == 2048 and m.avg_pooling.embedding.out_features == 2048
    names = m.fixed_bn_names()
    assert len(names) == 22                                # the original asserts 22
    assert all("downsample" not in n for n in names)
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert all(n.split(".")[2] in ("conv1", "bn1", "layer1", "layer2") for n in frozen)
    assert any(".layer2." in n for n in frozen) and not any("layer3" in n for n in frozen)
    m.train()
    mods = dict(m.named_modules())
    assert not mods["CNN.base.layer1.0.bn1"].training
    assert mods["CNN.base.layer1.0.downsample.1"].training   # the original's quirk, kept
    assert mods["CNN.base.layer3.0.bn1"].training


def test_optimizer_groups_and_schedule(tmp_path):
    m = create("resnet18", pretrained="none", embedding_size=16, fixed_layer=True)
    bu = BottomUp(m, [("a.jpg",)] * 20, str(tmp_path), is_video=True, embedding_size=16, workers=0)
    assert (bu.frames_per_video, bu.later_epochs, bu.eval_batch_size) == (16, 5, 1)
    opt = bu.make_optimizer(0)
    base, new = opt.param_groups
    assert base["lr_mult"] == 0.1 and new["lr_mult"] == 1.0
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert opt.defaults["weight_decay"] == 5e-4
    assert all(p.requires_grad for p in base["params"])
    assert len(new["params"]) == 4                       # embedding W, b; BN gamma, beta
    assert [bu.lr_for(0, e) for e in (0, 15, 16, 19)] == [0.1, 0.1, 0.01, 0.01]
    assert bu.lr_for(3, 0) == 0.01 and bu.epochs_for(0) == 20
    bu.adjust_lr(opt, 0, 16)
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.01]
    img = BottomUp(create("resnet18", pretrained="none", embedding_size=16), [("a.jpg",)] * 20,
                   str(tmp_path), is_video=False, embedding_size=16, workers=0)
    assert (img.frames_per_video, img.later_epochs, img.eval_batch_size) == (1, 2, 64)


def test_true_identities_never_enter_training(tmp_path):
    """BottomUp takes frames and pseudo-labels only (spec B13.4): its loader yields the labels
    it was given, and its constructor has no way to receive identities."""
    import inspect

    import numpy as np
    from PIL import Image
    params = set(inspect.signature(BottomUp.__init__).parameters)
    assert not params & {"pids", "dataset", "identities", "records"}
    for i in range(4):
        Image.new("RGB", (32, 64), (i * 40, 0, 0)).save(tmp_path / f"{i}.jpg")
    bu = BottomUp(create("resnet18", pretrained="none", embedding_size=8), [(f"{i}.jpg",) for i in range(4)],
                  str(tmp_path), is_video=False, batch_size=2, height=64, width=32, workers=0,
                  embedding_size=8)
    loader = bu.get_dataloader(bu.train_samples, np.array([3, 1, 2, 0]), training=True)
    seen = {int(i): int(y) for _, idx, lab in loader for i, y in zip(idx, lab)}
    assert seen == {0: 3, 1: 1, 2: 2, 3: 0}
