"""Cluster memories: initialisation, update rules and losses against hand-worked examples."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cdsm.memory import CM, CMHard, CMHybridV4, CMHybridV5, create_memory, names, resolve_name
from cdsm.memory.base import chunk_means


def n(*v):
    return F.normalize(torch.tensor(v, dtype=torch.float32), dim=0)


# ----------------------------------------------------------------------------- initialisation
def test_v5_initialises_from_core_samples_with_chunks():
    # cluster 0: samples 0..4, core = 0, 1, 2 (3, 4 are border points); cluster 1: 6 (core), 7
    # sample 5 is an outlier
    x = torch.tensor([[1., 0, 0], [0, 1, 0], [0, 0, 1], [5, 5, 5], [5, 5, 5],
                      [9, 9, 9], [1, 1, 0], [7, 7, 7]])
    labels = np.array([0, 0, 0, 0, 0, -1, 1, 1])
    core = np.array([0, 1, 2, 6])
    mem = create_memory("CMhybrid_v5", 3, 2, mem_instances=2)
    mem.initialise(x, labels, core)
    C = 2
    # central proxies: mean of the core samples
    assert torch.allclose(mem.features[0], n(1, 1, 1))
    assert torch.allclose(mem.features[1], n(1, 1, 0))
    # cluster 0 core = 3 samples, K = 2: torch.chunk -> sizes 2, 1
    assert torch.allclose(mem.features[0 + 1 * C], n(1, 1, 0))
    assert torch.allclose(mem.features[0 + 2 * C], n(0, 0, 1))
    # cluster 1 has one core sample: one chunk; the missing second one is the cluster mean
    assert torch.allclose(mem.features[1 + 1 * C], n(1, 1, 0))
    assert torch.allclose(mem.features[1 + 2 * C], n(1, 1, 0))
    assert mem.features.shape == (3 * C, 3)


def test_chunk_means_fewer_chunks_than_k():
    # 5 members, K = 4: torch.chunk gives chunks of 2, 2, 1 -> the 4th proxy is the whole mean
    f = torch.arange(5, dtype=torch.float32).unsqueeze(1)
    out = chunk_means(f, torch.zeros(5, dtype=torch.long), 1, 4)
    assert out.flatten().tolist() == [0.5, 2.5, 4.0, 2.0]


def test_cm_initialises_from_all_members():
    x = torch.tensor([[1., 0], [0, 1], [3, 3], [1, 0]])
    mem = CM(2, 2)
    mem.initialise(x, np.array([0, 0, -1, 1]), core_indices=np.array([0]))
    assert torch.allclose(mem.features, torch.stack([n(1, 1), n(1, 0)]))


# ------------------------------------------------------------------------------------ updates
def test_cm_updates_sample_by_sample_and_renormalises():
    mem = CM(2, 1, momentum=0.5)
    mem.features[0] = n(1, 0)
    mem.update(torch.tensor([[0., 1.], [0., 1.]]), torch.tensor([0, 0]))
    first = n(0.5, 0.5)                          # normalise(.5 (1,0) + .5 (0,1))
    second = F.normalize(0.5 * first + 0.5 * torch.tensor([0., 1.]), dim=0)
    assert torch.allclose(mem.features[0], second)


def test_cm_hard_updates_with_the_least_similar_sample():
    mem = CMHard(2, 1, momentum=0.5)
    mem.features[0] = n(1, 0)
    mem.update(torch.stack([n(1, 0.1), n(0.2, 1), n(1, 1)]), torch.tensor([0, 0, 0]))
    assert torch.allclose(mem.features[0], F.normalize(0.5 * n(1, 0) + 0.5 * n(0.2, 1), dim=0))


# Four teacher features of one cluster (exact in float32):
#   p0 = (0,0), p1 = (4,0), p2 = (0,3), p3 = (1,1)
#   D: d01 = 4, d02 = 3, d03 = sqrt2, d12 = 5, d13 = sqrt10, d23 = sqrt5 (diagonal ~1e-6)
#   mu = (4 + 3 + sqrt2)/4 = 2.10, (4 + 5 + sqrt10)/4 = 3.04, (3 + 5 + sqrt5)/4 = 2.56,
#        (sqrt2 + sqrt10 + sqrt5)/4 = 1.70
#   central = argmin mu = p3; candidates by decreasing mu: p1, p2, p0, p3
#   p1 taken; p2: D[2,1] = 5 >= mu1 -> taken; p0: D[0,1] = 4 >= mu1, D[0,2] = 3 >= mu2 -> taken
P = torch.tensor([[0., 0.], [4., 0.], [0., 3.], [1., 1.]])


def v5_memory(k, r_comp, r_indep, momentum=0.5):
    mem = CMHybridV5(2, 1, momentum=momentum, mem_instances=k)
    mem.features.copy_(torch.tensor([[10., 10.]] + [[float(j), -float(j)] for j in range(1, k + 1)]))
    # reliability is looked up by index in the full training list: samples sit at 10..13 here
    rc = torch.zeros(20)
    ri = torch.zeros(20)
    rc[10:14] = torch.tensor(r_comp)
    ri[10:14] = torch.tensor(r_indep)
    mem.set_reliability(rc, ri, [0.5], [0.5])
    return mem


def test_v5_diversity_selection_hand_worked():
    mem = v5_memory(3, [1, 1, 1, 1], [0, 0, 0, 0])
    before = mem.features.clone()
    mem.update(P, torch.tensor([0, 0, 0, 0]), torch.tensor([10, 11, 12, 13]))
    # selected p1, p2, p0 -> in batch order p0, p1, p2 go to slots 1, 2, 3 (momentum .5, no renorm)
    assert torch.allclose(mem.features[1], 0.5 * before[1] + 0.5 * P[0])
    assert torch.allclose(mem.features[2], 0.5 * before[2] + 0.5 * P[1])
    assert torch.allclose(mem.features[3], 0.5 * before[3] + 0.5 * P[2])
    assert torch.allclose(mem.features[0], 0.5 * before[0] + 0.5 * P[3])  # central sample p3


def test_v5_unreliable_candidate_is_skipped():
    # p2 (index 12) fails both criteria: p1 (first, unconditional), then p0: D[0,1] = 4 >= mu1
    # -> taken; p3: D[3,0] = sqrt2 < mu0 -> rejected. Two of three slots are updated.
    mem = v5_memory(3, [1, 1, 0, 1], [0, 0, 0.4, 0])
    before = mem.features.clone()
    mem.update(P, torch.tensor([0, 0, 0, 0]), torch.tensor([10, 11, 12, 13]))
    assert torch.allclose(mem.features[1], 0.5 * before[1] + 0.5 * P[0])
    assert torch.allclose(mem.features[2], 0.5 * before[2] + 0.5 * P[1])
    assert torch.equal(mem.features[3], before[3])
    # R_indep alone (>= threshold) is enough
    mem = v5_memory(3, [1, 1, 0, 1], [0, 0, 0.5, 0])
    mem.update(P, torch.tensor([0, 0, 0, 0]), torch.tensor([10, 11, 12, 13]))
    assert torch.allclose(mem.features[3], 0.5 * before[3] + 0.5 * P[2])


def test_v5_first_candidate_is_taken_even_if_unreliable_and_k_caps():
    mem = v5_memory(1, [0, 0, 0, 0], [0, 0, 0, 0])
    before = mem.features.clone()
    mem.update(P, torch.tensor([0, 0, 0, 0]), torch.tensor([10, 11, 12, 13]))
    assert torch.allclose(mem.features[1], 0.5 * before[1] + 0.5 * P[1])  # the most peripheral


def test_v5_uses_indexes_of_the_full_training_list():
    # the same batch with the reliability of index 12 moved to index 2 (a filtered-list index):
    # then the candidate at batch position 2 is reliable again only if looked up at 12
    mem = v5_memory(3, [1, 1, 0, 1], [0, 0, 0, 0])
    mem.r_comp[2] = 1.0
    before = mem.features.clone()
    mem.update(P, torch.tensor([0, 0, 0, 0]), torch.tensor([10, 11, 12, 13]))
    assert torch.equal(mem.features[3], before[3])


def test_v4_ignores_reliability():
    mem = CMHybridV4(2, 1, momentum=0.5, mem_instances=3)
    before = mem.features.clone()
    mem.update(P, torch.tensor([0, 0, 0, 0]), torch.tensor([0, 1, 2, 3]))
    assert torch.allclose(mem.features[3], 0.5 * before[3] + 0.5 * P[2])


def test_v5_updates_only_clusters_in_the_batch():
    mem = CMHybridV5(2, 2, momentum=0.5, mem_instances=2)
    mem.set_reliability(torch.ones(4), torch.ones(4), [0.1, 0.1], [0.1, 0.1])
    before = mem.features.clone()
    mem.update(torch.tensor([[1., 0], [0, 1]]), torch.tensor([1, 1]), torch.tensor([0, 1]))
    for row in (0, 2, 4):  # cluster 0's central and marginal proxies
        assert torch.equal(mem.features[row], before[row])
    assert not torch.equal(mem.features[1], before[1])


# --------------------------------------------------------------------------------------- loss
def test_v5_loss_hand_worked_and_memory_gets_no_gradient():
    # C = 2, K = 2; f = (1, 0); P0 = (.1, a), P1 = (.05, b); Q01 = (.6, .8), Q11 = (0, 1),
    # Q02 = (.8, .6), Q12 = (.6, -.8): s0 = [.1, .05], z = [.7, .6] for y = 0
    mem = CMHybridV5(2, 2, temp=0.05, hard_weight=0.5, mem_instances=2)
    mem.features.copy_(torch.tensor([[0.1, 0.995], [0.05, 0.999], [0.6, 0.8], [0.0, 1.0],
                                     [0.8, 0.6], [0.6, -0.8]]))
    f = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss, parts = mem.loss(f, torch.tensor([0]))
    want = 0.5 * math.log1p(math.exp(-1.0)) + 0.5 * math.log1p(math.exp(-2.0))
    assert math.isclose(loss.item(), want, rel_tol=1e-5)
    loss.backward()
    assert f.grad is not None and mem.features.grad is None


def test_cm_hybrid_keeps_the_original_weighting():
    mem = create_memory("CMhybrid", 2, 2, temp=1.0, hard_weight=0.4)
    mem.features.copy_(torch.tensor([[1., 0], [0, 1], [0, 1], [1, 0]]))
    loss, parts = mem.loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    l_hard = math.log1p(math.exp(-1.0))
    l_mean = math.log1p(math.exp(1.0))
    assert math.isclose(float(loss), 0.4 * (l_hard + 0.6 * l_mean), rel_tol=1e-5)


@pytest.mark.parametrize("name", ["CM", "CMhard", "CMhybrid", "CMhybrid_v2", "CMhybrid_v3", "CMhybrid_v4",
                                  "CMhybrid_v5"])
def test_every_variant_trains_a_step(name):
    torch.manual_seed(0)
    x = F.normalize(torch.randn(12, 8), dim=1)
    labels = np.array([0] * 4 + [1] * 4 + [2] * 4)
    mem = create_memory(name, 8, 3, mem_instances=2, momentum=0.2)
    mem.initialise(x, labels, np.arange(12), rng=np.random.default_rng(0))
    if name == "CMhybrid_v5":
        mem.set_reliability(torch.ones(12), torch.ones(12), [0.2] * 3, [0.2] * 3)
    f = x.clone().requires_grad_(True)
    y = torch.as_tensor(labels)
    loss, _ = mem.loss(f, y)
    before = mem.features.clone()
    loss.backward()
    mem.update(x, y, torch.arange(12))
    assert torch.isfinite(loss) and f.grad is not None
    assert not torch.equal(before, mem.features)


def test_names_and_the_readme_spelling():
    assert names()[-1] == "CMhybrid_v5"
    assert resolve_name("CMhybrid_v5") == ("CMhybrid_v5", None)
    name, warning = resolve_name("CMhybird_v5")
    assert name == "CMhybrid_v5" and "CMhybird_v5" in warning
    with pytest.raises(ValueError, match="did you mean CMhybrid_v5"):
        resolve_name("CMhybrid_v6")
