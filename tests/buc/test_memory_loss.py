"""The repelled loss and its memory: hand-worked values, and the reset to zeros after a merge."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from buc.bottom_up import BottomUp
from buc.losses import ExLoss
from buc.models import create


def test_zero_memory_gives_log_c_and_no_gradient():
    loss_fn = ExLoss(4, 5, t=10)
    x = torch.nn.functional.normalize(torch.randn(3, 4), dim=1).requires_grad_()
    loss, logits = loss_fn(x, torch.tensor([0, 1, 2]))
    assert loss.item() == pytest.approx(math.log(5))
    assert torch.count_nonzero(logits) == 0
    loss.backward()
    assert torch.count_nonzero(x.grad) == 0            # first batch of every step: zero gradient


def test_gradient_uses_the_memory_before_the_update():
    t, B = 10.0, 2
    loss_fn = ExLoss(2, 3, t=t)
    V = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    loss_fn.V.copy_(V)
    x = torch.tensor([[0.6, 0.8], [1.0, 0.0]], requires_grad=True)
    y = torch.tensor([1, 0])
    loss, _ = loss_fn(x, y)
    loss.backward()
    loss_fn.update_memory(x.detach(), y)
    p = torch.softmax(t * x.detach() @ V.t(), dim=1)
    expected = t / B * (p - torch.nn.functional.one_hot(y, 3).float()) @ V   # dL/dv, old memory
    assert torch.allclose(x.grad, expected, atol=1e-6)
    assert not torch.equal(loss_fn.V, V)                                      # and V moved after


def test_memory_update_is_sequential_in_batch_order():
    # three samples of cluster 0: V = 0 -> e1 (0 deg) -> 45 deg -> 22.5 deg
    mem = ExLoss(2, 2, t=10)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    mem.update_memory(x, torch.tensor([0, 0, 0]))
    c, s = math.cos(math.pi / 8), math.sin(math.pi / 8)
    assert mem.V[0].tolist() == pytest.approx([c, s], abs=1e-6)
    assert mem.V[1].tolist() == [0.0, 0.0]                  # untouched slot stays zero
    # a batch mean would give normalize(mean) = (0.894, 0.447): not what the original does
    mem2 = ExLoss(2, 1, t=10)
    mem2.update_memory(x[[1, 0, 2]], torch.tensor([0, 0, 0]))   # order 90, 0, 0 deg -> 22.5 deg
    assert mem2.V[0].tolist() == pytest.approx([c, s], abs=1e-6)
    mem3 = ExLoss(2, 1, t=10)
    mem3.update_memory(x[[0, 2, 1]], torch.tensor([0, 0, 0]))   # order 0, 0, 90 deg -> 45 deg
    assert mem3.V[0].tolist() == pytest.approx([math.sqrt(0.5)] * 2, abs=1e-6)


def test_memory_is_not_a_parameter():
    loss_fn = ExLoss(8, 4, t=10)
    assert list(loss_fn.parameters()) == []
    assert "memory.V" in loss_fn.state_dict()


def test_memory_reset_to_zeros_after_a_merge(tiny_root):
    from buc import datasets
    ds = datasets.create("market1501", tiny_root, verbose=False)
    model = create("resnet18", pretrained="none", embedding_size=16)
    bu = BottomUp(model, [r[0] for r in ds.train], ds.images_dir, is_video=False, height=64, width=32,
                  workers=0, embedding_size=16, progress=False)
    n = len(ds.train)
    assert bu.criterion.V.shape == (n, 16)
    bu.criterion.V.fill_(0.5)                               # as if trained
    rng = np.random.default_rng(0)
    result = bu.get_new_train_data(np.arange(n), 10, 0.003, features=rng.normal(size=(n, 4)))
    assert result.num_after == n - 10
    assert bu.criterion.V.shape == (n - 10, 16)
    assert torch.count_nonzero(bu.criterion.V) == 0
