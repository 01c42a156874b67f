"""The optimizer (issue 20): 3C's Adam, one parameter group per tensor, runs through torch's fused
kernel; its update equals the for-loop Adam's to 1e-6 over 20 steps (warm-up schedule stepped in
between) with the grouping train.py builds, on a small network of 3C's parts (convolutions,
BatchNorm, GeM with its learnable exponent, the BN neck with its frozen bias)."""
from __future__ import annotations

import copy

import torch
from conftest import tiny_args
from torch import nn

from ccc.models.gem import GeneralizedMeanPoolingP


def small_reid_net() -> nn.Module:
    neck = nn.BatchNorm1d(32)
    neck.bias.requires_grad_(False)          # as ReIDResNet's feat_bn
    return nn.Sequential(nn.Conv2d(3, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         GeneralizedMeanPoolingP(3.0), nn.Flatten(), nn.Linear(32, 32), neck)


def test_fused_adam_equals_the_for_loop_adam(train_script, tmp_path):
    args = train_script.parse_args(tiny_args(tmp_path / "data", tmp_path / "logs", "--lr", "1e-3"))
    torch.manual_seed(0)
    model = small_reid_net()
    twin, initial = copy.deepcopy(model), copy.deepcopy(model)
    fused, fused_sched = train_script.build_optimizer(model, args)
    loop, loop_sched = train_script.build_optimizer(twin, args, fused=False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # the original's grouping: one group per trainable tensor (the neck's frozen BN bias left out)
    assert len(fused.param_groups) == len(trainable) == len(loop.param_groups)
    assert all(len(g["params"]) == 1 for g in fused.param_groups)
    assert all(g["fused"] for g in fused.param_groups) and not any(g["fused"] for g in loop.param_groups)
    assert fused.param_groups[0]["weight_decay"] == 5e-4
    gen = torch.Generator().manual_seed(1)
    for step in range(20):
        for p, q in zip(model.parameters(), twin.parameters()):
            if p.requires_grad:
                scale = 10.0 ** float(torch.randint(-4, 1, (1,), generator=gen))
                g = torch.randn(p.shape, generator=gen) * scale
                p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        loop.step()
        if step % 5 == 4:             # the learning rate changes (warm-up) as between epochs
            fused_sched.step()
            loop_sched.step()
    assert fused.param_groups[0]["lr"] == loop.param_groups[0]["lr"] != args.lr * args.warmup_factor
    worst = max(float((p - q).detach().abs().max()) for p, q in zip(model.parameters(), twin.parameters()))
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(model.parameters(), initial.parameters()))
    assert worst <= 1e-6 and moved > 1e-3, (worst, moved)
    print(f"fused vs for-loop Adam, 20 steps: max |difference| {worst:.2e}, parameters moved {moved:.2e}")
    for p, q in zip(trainable, [q for q in twin.parameters() if q.requires_grad]):
        a, b = fused.state[p], loop.state[q]
        assert float(a["step"]) == float(b["step"]) == 20
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"], atol=1e-6, rtol=0)
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], atol=1e-6, rtol=0)
