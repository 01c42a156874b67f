"""ClusterNCE and the hybrid loss against hand-computed values."""
import math

import torch
import torch.nn.functional as F

from cdsm.losses import cluster_nce, hybrid_contrast_loss, hybrid_logits


def ce(logits, target):
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_cluster_nce_is_temperature_scaled_cross_entropy():
    s = torch.tensor([[0.9, 0.1, -0.2]])
    got = cluster_nce(s, torch.tensor([0]), temp=0.5)
    assert math.isclose(float(got), ce([1.8, 0.2, -0.4], 0), rel_tol=1e-6)


def test_label_smoothing_is_spcl_cross_entropy_label_smooth():
    s = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.3, 0.2]])
    y = torch.tensor([0, 2])
    logp = F.log_softmax(s / 0.05, dim=1)
    target = torch.full_like(logp, 0.1 / 3)
    target[torch.arange(2), y] += 0.9
    spcl = (-target * logp).mean(0).sum()
    assert torch.allclose(cluster_nce(s, y, 0.05, smooth=0.1), spcl, atol=1e-6)
    # --smooth only switches smoothing on; epsilon stays 0.1 (as the original)
    assert torch.allclose(cluster_nce(s, y, 0.05, smooth=0.7), spcl, atol=1e-6)


def test_hybrid_logits_mean_positive_max_negative():
    # K = 2 marginal proxies, B = 2, C = 3
    marginal = torch.tensor([[[0.6, 0.0, 0.2], [0.1, 0.5, 0.9]],
                             [[0.8, 0.6, 0.1], [0.3, 0.7, 0.4]]])
    y = torch.tensor([0, 1])
    z = hybrid_logits(marginal, y, "mean")
    assert torch.allclose(z, torch.tensor([[0.7, 0.6, 0.2], [0.3, 0.6, 0.9]]))
    z = hybrid_logits(marginal, y, "min")
    assert torch.allclose(z, torch.tensor([[0.6, 0.6, 0.2], [0.3, 0.5, 0.9]]))


def test_hybrid_loss_hand_worked():
    # f = (1, 0); central P0 = (.1, .995), P1 = (.05, .999): s0 = [.1, .05]
    # marginals Q01 = (.6, .8), Q02 = (.8, .6), Q11 = (0, 1), Q12 = (.6, -.8): s1 = [.6, 0], s2 = [.8, .6]
    # y = 0: z = [mean(.6, .8), max(0, .6)] = [.7, .6]
    center = torch.tensor([[0.1, 0.05]])
    marginal = torch.tensor([[[0.6, 0.0]], [[0.8, 0.6]]])
    loss, l_c, l_m = hybrid_contrast_loss(center, marginal, torch.tensor([0]), 0.5, 0.5, temp=0.05)
    want_c = math.log1p(math.exp(-1.0))           # CE([2, 1], 0)
    want_m = math.log1p(math.exp(-2.0))           # CE([14, 12], 0)
    assert math.isclose(float(l_c), want_c, rel_tol=1e-5)
    assert math.isclose(float(l_m), want_m, rel_tol=1e-5)
    assert math.isclose(float(loss), 0.5 * want_c + 0.5 * want_m, rel_tol=1e-5)
    loss2, _, _ = hybrid_contrast_loss(center, marginal, torch.tensor([0]), 0.25, 0.75, temp=0.05)
    assert math.isclose(float(loss2), 0.25 * want_c + 0.75 * want_m, rel_tol=1e-5)
