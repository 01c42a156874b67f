"""The fused Adam of cdsm.optim is the original's Adam update (the for-loop path), group for group.

The gradients are a fixed random sequence (the same for both optimizers): with gradients from a
loss, a one-ulp difference in a weight changes the next gradient, and Adam turns the sign of a
near-zero gradient into a step of lr, so trajectories drift apart for reasons that are not the
update's. Weight decay still makes each gradient depend on the weights, as in training.
"""
import copy
import math

import torch
from torch import nn

from cdsm import models
from cdsm.models import GeneralizedMeanPoolingP
from cdsm.optim import build_optimizer, load_optimizer_state


def tiny_model():
    """A small network with the kinds of tensors of CDSM's (convolutions, BatchNorm, GeM's p, an
    embedding Linear, the BN neck with its frozen bias), grouped by the real build_optimizer."""
    torch.manual_seed(0)
    neck = nn.BatchNorm1d(32)
    neck.bias.requires_grad_(False)
    return nn.Sequential(nn.Conv2d(3, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 64, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         GeneralizedMeanPoolingP(3.0), nn.Flatten(), nn.Linear(64, 32), neck)


GRADS = {}


def gradient(p, i):
    """Step i's gradient of p: a fixed mix of two random fields (scale 1e-3, signs changing from
    step to step, 5 % exact zeros), the same for every copy of the model."""
    key = tuple(p.shape), p.numel()
    if key not in GRADS:
        g = torch.Generator().manual_seed(p.numel())
        mask = torch.rand(p.shape, generator=g) > 0.05
        GRADS[key] = [1e-3 * torch.randn(p.shape, generator=g) * mask for _ in range(2)]
    a, b = GRADS[key]
    return a * math.sin(0.9 * i + 0.3) + b * math.cos(1.7 * i)


def train(model, optimizer, scheduler, steps, start=0):
    """steps with those gradients; StepLR every 10 steps (an 'epoch')."""
    for i in range(start, start + steps):
        optimizer.zero_grad(set_to_none=True)
        for p in model.parameters():
            if p.requires_grad:
                p.grad = gradient(p, i)
        optimizer.step()
        if (i + 1) % 10 == 0:
            scheduler.step()


def max_difference(a, b) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def test_the_groups_of_the_real_network():
    model = models.create("resnet18", pretrained="none")
    optimizer, _ = build_optimizer(model, 3.5e-4, 5e-4, step_size=20)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert [g["params"][0] for g in optimizer.param_groups] == trainable  # one group per tensor, in order
    assert len(trainable) == 62 and not model.feat_bn.bias.requires_grad
    assert all(g["fused"] is True for g in optimizer.param_groups)  # the CPU has a fused Adam kernel


def test_fused_adam_is_the_for_loop_update_with_the_original_groups():
    base = tiny_model()
    ref, fused = copy.deepcopy(base), copy.deepcopy(base)
    opt_ref, sched_ref = build_optimizer(ref, 3.5e-4, 5e-4, step_size=1, implementation="for-loop")
    opt, sched = build_optimizer(fused, 3.5e-4, 5e-4, step_size=1)  # auto: fused on the CPU
    trainable = [p for p in fused.parameters() if p.requires_grad]
    # one group per trainable tensor (the BN neck's frozen bias is left out), as the original
    assert len(opt.param_groups) == len(trainable) < len(list(fused.parameters()))
    assert all(len(g["params"]) == 1 and g["fused"] is True for g in opt.param_groups)
    assert all(g["fused"] is False and g["foreach"] is False for g in opt_ref.param_groups)
    assert all(g["lr"] == 3.5e-4 and g["weight_decay"] == 5e-4 for g in opt.param_groups)
    train(ref, opt_ref, sched_ref, 20)
    train(fused, opt, sched, 20)
    assert max_difference(base, ref) > 1e-3  # the weights moved
    assert max_difference(ref, fused) < 1e-6
    # StepLR (step 1 'epoch' here) changed every group's lr alike, twice
    lrs = {g["lr"] for g in opt.param_groups}
    assert lrs == {g["lr"] for g in opt_ref.param_groups} == {3.5e-4 * 0.1 * 0.1}


def test_a_for_loop_checkpoint_resumes_on_the_fused_path():
    ref = tiny_model()
    opt_ref, sched_ref = build_optimizer(ref, 3.5e-4, 5e-4, step_size=10, implementation="for-loop")
    train(ref, opt_ref, sched_ref, 10)
    saved_model, saved_opt = copy.deepcopy(ref.state_dict()), copy.deepcopy(opt_ref.state_dict())
    saved_sched = sched_ref.state_dict()
    train(ref, opt_ref, sched_ref, 10, start=10)

    resumed = tiny_model()
    resumed.load_state_dict(saved_model)
    opt, sched = build_optimizer(resumed, 3.5e-4, 5e-4, step_size=10)
    load_optimizer_state(opt, saved_opt)
    sched.load_state_dict(saved_sched)
    assert all(g["fused"] is True for g in opt.param_groups)
    train(resumed, opt, sched, 10, start=10)
    assert max_difference(ref, resumed) < 1e-6
