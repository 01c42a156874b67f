"""Losses against values worked out by hand (two-point batches, closed forms)."""

import math

import pytest
import torch

from auxusl.losses import (
    CrossEntropyLabelSmooth,
    CrossEntropyLabelSmoothK,
    SoftEntropy,
    SoftMarginTripletLoss,
    SoftTripletLoss,
    WeightAdaptiveTripletLoss,
    batch_hard,
    euclidean_dist,
)

# 4 samples on a line (1-D features), labels 0 0 1 1:
#   x = 0, 1, 3, 7   -> d_ap: |0-1| = 1, 1, |3-7| = 4, 4;  d_an: |0-3| = 3, |1-3| = 2, 2, |7-1| = 6
X = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
Y = torch.tensor([0, 0, 1, 1])
D_AP = [1.0, 1.0, 4.0, 4.0]
D_AN = [3.0, 2.0, 2.0, 6.0]


def test_batch_hard_by_hand():
    d_ap, d_an, ap, an = batch_hard(euclidean_dist(X, X), Y)
    assert d_ap.tolist() == pytest.approx(D_AP, abs=1e-5) and d_an.tolist() == pytest.approx(D_AN, abs=1e-5)
    assert ap.tolist() == [1, 0, 3, 2] and an.tolist() == [2, 2, 1, 1]


def test_soft_margin_triplet_by_hand():
    want = sum(math.log1p(math.exp(a - n)) for a, n in zip(D_AP, D_AN)) / 4
    assert SoftMarginTripletLoss()(X, Y).item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("lam", [-0.01, -1.0, 0.5])
def test_watl_by_hand(lam):
    # t = d_ap - d_an + 0.5 = -1.5, -0.5, 2.5, -1.5: only the third triplet violates the margin
    t = 2.5
    want = math.exp(lam * t) * t / 4
    x = X.clone().requires_grad_(True)
    loss = WeightAdaptiveTripletLoss(0.5, lam)(x, Y)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    # the weight is not detached: d loss / d t = exp(lam t)(1 + lam t) / 4, with
    # t = (x3 - x2) - (x2 - x1) + m for the third sample (x = 0, 1, 3, 7): dt/dx = (0, 1, -2, 1)
    loss.backward()
    g = math.exp(lam * t) * (1 + lam * t) / 4
    assert x.grad[:, 0].tolist() == pytest.approx([0.0, g, -2 * g, g], rel=1e-4, abs=1e-6)


def test_watl_without_violations_is_zero():
    x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    assert WeightAdaptiveTripletLoss(0.5, -0.01)(x, Y).item() == 0.0


def test_rlsce_by_hand():
    # 4 clusters; neighbour map rows: cluster 0 -> {0, 2, 3}, i.e. its K = 2 neighbours 2, 3
    nmap = torch.tensor([[1, 0, 1, 1], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
    loss = CrossEntropyLabelSmoothK(nmap, K=2, epsilon=0.1)
    q = loss.targets(torch.tensor([0, 3]), 4)
    assert q.flatten().tolist() == pytest.approx([0.9, 0.0, 0.05, 0.05, 0.0, 0.0, 0.05, 0.9])
    z = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.0, 0.5, 0.0, 3.0]])
    logp = torch.log_softmax(z, 1)
    want = -(q * logp).sum(1).mean()
    assert loss(z, torch.tensor([0, 3])).item() == pytest.approx(want.item(), rel=1e-6)
    # by hand for the first row: -(0.9 log p0 + 0.05 log p2 + 0.05 log p3)
    s = math.exp(2) + 1 + math.exp(1) + math.exp(-1)
    row0 = -(0.9 * (2 - math.log(s)) + 0.05 * (1 - math.log(s)) + 0.05 * (-1 - math.log(s)))
    assert -(q[0] * logp[0]).sum().item() == pytest.approx(row0, rel=1e-6)


def test_rlsce_xor_when_the_label_is_not_among_its_neighbours():
    # the original XORs the one-hot with the map row: a label missing from its own row gets eps/K too
    nmap = torch.tensor([[0, 1], [1, 1]])
    q = CrossEntropyLabelSmoothK(nmap, K=1, epsilon=0.1).targets(torch.tensor([0]), 2)
    assert q.flatten().tolist() == pytest.approx([0.9 + 0.1, 0.1])


def test_lsce_by_hand():
    z = torch.tensor([[1.0, 0.0, 0.0]])
    logp = torch.log_softmax(z, 1)[0]
    want = -(0.9 + 0.1 / 3) * logp[0] - 0.1 / 3 * (logp[1] + logp[2])
    assert CrossEntropyLabelSmooth(3, 0.1)(z, torch.tensor([0])).item() == pytest.approx(
        want.item(), rel=1e-6
    )


def test_soft_entropy_by_hand():
    z, zt = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    pt = torch.softmax(zt, 1)[0]
    logp = torch.log_softmax(z, 1)[0]
    assert SoftEntropy()(z, zt).item() == pytest.approx(-(pt * logp).sum().item(), rel=1e-6)


def test_soft_triplet_uses_student_indices_and_teacher_distances():
    # teacher features: x / 2 -> teacher d_ap = 0.5, 0.5, 2, 2 and d_an at the student's indices 1.5, 1, 1, 3
    t_ap, t_an = [0.5, 0.5, 2.0, 2.0], [1.5, 1.0, 1.0, 3.0]
    want = 0.0
    for a, n, ta, tn in zip(D_AP, D_AN, t_ap, t_an):
        pa, pn = math.exp(ta) / (math.exp(ta) + math.exp(tn)), math.exp(tn) / (math.exp(ta) + math.exp(tn))
        la, ln = a - math.log(math.exp(a) + math.exp(n)), n - math.log(math.exp(a) + math.exp(n))
        want += -(pa * la + pn * ln)
    assert SoftTripletLoss()(X, X / 2, Y).item() == pytest.approx(want / 4, rel=1e-5)
