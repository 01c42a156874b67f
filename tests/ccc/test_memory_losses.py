"""Memory updates (--cm-mode, CHD), CIE weighting and the LR schedule against hand-worked values."""
import math

import pytest
import torch
import torch.nn.functional as F

from ccc.losses import camera_entropy_loss, camera_entropy_weights
from ccc.memory import CLI_MODES, create_memory, names
from ccc.utils.lr_scheduler import build_scheduler


def memory_with(mode, rows, momentum=0.1):
    mem = create_memory(mode, 2, len(rows), temp=0.05, momentum=momentum)
    mem.initialise(torch.tensor(rows, dtype=torch.float32))
    return mem


def unit(*v):
    return F.normalize(torch.tensor(v, dtype=torch.float32), dim=0)


def test_modes():
    assert set(CLI_MODES) <= set(names())
    assert {"cm_camera", "cm_hard_camera"} <= set(names())


def test_chd_update_by_hand():
    mem = memory_with("hd_camera", [[1, 0], [0, 1]])
    f = torch.stack([unit(1, 0), unit(0, 1), unit(.6, .8), unit(.8, .6), unit(.6, .8)])
    y = torch.tensor([0, 0, 0, 1, 1])
    cam = torch.tensor([0, 0, 1, 0, 1])
    mem.update(f, y, cam)
    # cluster 0, camera 0: centre (.7071, .7071); f1: xc 1.7071, xz 0 -> chd 0; f2: xc 1.7071, xz 1
    #   -> chd 1.7071 / 2.7071 = .6306 (its best); camera 1: f3 alone: xc 2, xz .4 -> .3333
    #   -> one update with f2: (.1, .9) renormalised
    # cluster 1 (M = (0, 1)), camera 0: f4 alone: xc 2, xz 1 - .6 = .4 -> .3333; camera 1: f5:
    #   xc 2, xz 1 - .8 = .2 -> .1818 -> update with f4: .1 (0, 1) + .9 (.8, .6) = (.72, .64)
    torch.testing.assert_close(mem.features[0], unit(.1, .9))
    torch.testing.assert_close(mem.features[1], unit(.72, .64))


def test_chd_ties_take_the_first_camera_group():
    mem = memory_with("hd_camera", [[1, 0]])
    f = torch.stack([unit(0, 1), unit(0, -1)])       # same chd in both camera groups
    mem.update(f, torch.tensor([0, 0]), torch.tensor([3, 1]))
    torch.testing.assert_close(mem.features[0], unit(.1, .9))


def test_vanilla_hard_and_camera_updates():
    f = torch.stack([unit(0, 1), unit(1, 1), unit(-1, 1)])
    y = torch.tensor([0, 0, 0])
    cam = torch.tensor([0, 0, 1])
    m = 0.5
    mem = memory_with("cm", [[1, 0]], momentum=m)
    mem.update(f, y, cam)
    row = unit(1, 0)
    for x in f:                                  # every sample, in order, renormalised each time
        row = F.normalize(m * row + (1 - m) * x, dim=0)
    torch.testing.assert_close(mem.features[0], row)
    mem = memory_with("cm_hard", [[1, 0]], momentum=m)
    mem.update(f, y, cam)                        # least similar to (1, 0): (-1, 1)/sqrt 2
    torch.testing.assert_close(mem.features[0], F.normalize(m * unit(1, 0) + (1 - m) * f[2], dim=0))
    mem = memory_with("tccl_camera", [[1, 0]], momentum=m)
    mem.update(f, y, cam)                        # camera proxies: mean of f0, f1 and f2 -> the least similar
    p0 = F.normalize((f[0] + f[1]) / 2, dim=0)
    assert float(p0 @ unit(1, 0)) > float(f[2] @ unit(1, 0))
    torch.testing.assert_close(mem.features[0], F.normalize(m * unit(1, 0) + (1 - m) * f[2], dim=0))
    mem = memory_with("cm_camera", [[1, 0]], momentum=m)
    mem.update(f, y, cam)                        # first sample of each camera group, in order
    row = F.normalize(m * unit(1, 0) + (1 - m) * f[0], dim=0)
    torch.testing.assert_close(mem.features[0], F.normalize(m * row + (1 - m) * f[2], dim=0))
    mem = memory_with("cm_hard_camera", [[1, 0]], momentum=m)
    mem.update(f, y, cam)                        # per camera group the least similar to M (before updates)
    row = F.normalize(m * unit(1, 0) + (1 - m) * f[0], dim=0)
    torch.testing.assert_close(mem.features[0], F.normalize(m * row + (1 - m) * f[2], dim=0))


def test_gradient_uses_the_memory_before_its_update():
    """The original autograd.Function: grad to the features = g M_old; M updated in backward."""
    mem = memory_with("hd_camera", [[1, 0], [0, 1]])
    before = mem.features.clone()
    x = torch.stack([unit(1, .2), unit(.3, 1)]).requires_grad_(True)
    y, cam = torch.tensor([0, 1]), torch.tensor([0, 0])
    loss, _ = mem.loss(x, y, cam)
    loss.backward()
    mem.update(x.detach(), y, cam)
    assert not torch.equal(before, mem.features)
    x2 = x.detach().clone().requires_grad_(True)
    F.cross_entropy(x2 @ before.t() / 0.05, y).backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_cie_weights_match_the_paper_figure():
    # cluster 0: cameras 0,0,1,2 (p 1/2, 1/4, 1/4: H = 1.5); cluster 5: one camera (H = 0);
    # cluster 2: cameras 0,1 (H = 1)  ->  w = 3 e^H / (e^1.5 + e^0 + e^1) = 1.64, 0.37, 0.99
    y = torch.tensor([0, 0, 0, 0, 5, 5, 2, 2])
    cam = torch.tensor([0, 0, 1, 2, 3, 3, 0, 1])
    w, present, weights, entropy = camera_entropy_weights(y, cam)
    assert present.tolist() == [0, 2, 5]
    torch.testing.assert_close(entropy, torch.tensor([1.5, 1.0, 0.0]))
    s = math.exp(1.5) + 1 + math.exp(1)
    expected = {0: 3 * math.exp(1.5) / s, 2: 3 * math.exp(1) / s, 5: 3 / s}
    assert [round(expected[c], 2) for c in (0, 5, 2)] == [1.64, 0.37, 0.99]
    torch.testing.assert_close(w, torch.tensor([expected[int(c)] for c in y]))
    assert float(weights.mean()) == pytest.approx(1.0)
    logits = torch.randn(8, 6)
    ce = F.cross_entropy(logits, y, reduction="none")
    torch.testing.assert_close(camera_entropy_loss(logits, y, cam), (w * ce).mean())
    # one-hot float targets (what 3C feeds cross_entropy) give the same terms
    torch.testing.assert_close(F.cross_entropy(logits, F.one_hot(y, 6).float(), reduction="none"), ce)


def lrs(version="v1", epochs=62, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [p]}], lr=3.5e-4)
    sched = build_scheduler(opt, version, **kw)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_multistep_schedule():
    lr = lrs(warmup_iters=10, warmup_factor=0.1, lr_steps=20)
    assert lr[0] == pytest.approx(3.5e-5)
    assert lr[9] == pytest.approx(3.5e-4 * (0.1 * 0.1 + 0.9))       # 0.91 x
    assert lr[10] == lr[29] == pytest.approx(3.5e-4)
    assert lr[30] == lr[49] == pytest.approx(3.5e-5)
    assert lr[50] == lr[61] == pytest.approx(3.5e-6)
    v2 = lrs("v2", warmup_iters=10, warmup_factor=0.1, lr_steps=20, warmup_lr_factor=0.5)
    assert v2[0] == pytest.approx(3.5e-5 * 0.5)                       # alpha = 0 at epoch 0
    assert v2[1] == pytest.approx(3.5e-4 * 0.5 * (0.1 * 0.8 + 0.2))   # alpha = (1 + 1) / 10
    assert v2[10] == pytest.approx(3.5e-4)
