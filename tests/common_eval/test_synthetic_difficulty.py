"""Difficulty calibration of the synthetic benchmark (domain a, market1501 layout, default size):
from random initialisation a ResNet-18 ranks poorly; trained with the true labels it ranks well.

Run as a script to measure other seeds:
    PYTHONPATH=common_eval python tests/common_eval/test_synthetic_difficulty.py --seeds 0,1,2 [--domain b]
The measured numbers are in common_eval/README.md ("Synthetic benchmark").
"""
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

try:
    import common_eval  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "common_eval"))

from PIL import Image

from common_eval.synthetic import generate

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

UNTRAINED_MAX = 50.0   # measured 26-37 over seeds 0-4
TRAINED_MIN = 65.0     # measured 76-87 over seeds 0-4
ITERS, BATCH, LR = 120, 64, 1e-3
MARKET_RE = re.compile(r"([-\d]+)_c(\d)")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def load(folder):
    """Images at 64x32 (uint8 NCHW tensor), pids, cameras; pid -1 (junk) dropped."""
    items = []
    for p in sorted(Path(folder).glob("*.jpg")):
        pid, cam = map(int, MARKET_RE.search(p.name).groups())
        if pid != -1:
            items.append((p, pid, cam))
    x = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 64), Image.BILINEAR))
                  for p, _, _ in items])
    return (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(),
            np.array([i[1] for i in items]), np.array([i[2] for i in items]))


def normalise(x):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def backbone():
    m = torchvision.models.resnet18(weights=None)
    m.fc = torch.nn.Identity()       # features = global average pool (512-d)
    return m


@torch.no_grad()
def features(model, x):
    model.eval()
    f = torch.cat([model(normalise(x[i:i + 128])) for i in range(0, len(x), 128)])
    return torch.nn.functional.normalize(f, dim=1)


def augment(x, gen):
    """Random horizontal flip and pad-4 random crop, on a uint8 batch."""
    n = len(x)
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    xp = torch.nn.functional.pad(x, (4, 4, 4, 4))
    i = torch.randint(0, 9, (n,), generator=gen)
    j = torch.randint(0, 9, (n,), generator=gen)
    return torch.stack([xp[k, :, i[k]:i[k] + 64, j[k]:j[k] + 32] for k in range(n)])


def reference_map(dist, q_pids, g_pids, q_cams, g_cams):
    """Single-shot Market protocol: drop same-pid-same-camera gallery items; AP = mean over the
    true matches of the precision at each match (step-wise)."""
    aps = []
    for i in range(len(q_pids)):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i]))
        match = (g_pids[order] == q_pids[i])[keep]
        if not match.any():
            continue
        hits = np.flatnonzero(match)
        aps.append(np.mean((np.arange(len(hits)) + 1) / (hits + 1)))
    return float(np.mean(aps))


def score(model, query, gallery):
    fq, fg = features(model, query[0]), features(model, gallery[0])
    dist = torch.cdist(fq, fg).pow(2).numpy()
    ref = reference_map(dist, query[1], gallery[1], query[2], gallery[2])
    try:
        from common_eval import evaluate
    except ImportError:
        return 100 * ref
    result = evaluate(dist, query[1], gallery[1], query[2], gallery[2])
    assert abs(result.mAP - ref) < 1e-6, (result.mAP, ref)
    return 100 * result.mAP


def measure(root, seed=0, domain="a"):
    """(untrained mAP, trained mAP, training seconds) on a freshly generated market1501."""
    torch.set_num_threads(2)
    data = root / "Market-1501-v15.09.15"
    if not data.exists():
        generate("market1501", root, seed=seed, domain=domain)
    train, query, gallery = (load(data / s) for s in ("bounding_box_train", "query", "bounding_box_test"))
    label = {p: i for i, p in enumerate(sorted(set(train[1].tolist())))}
    y = torch.tensor([label[p] for p in train[1].tolist()])
    torch.manual_seed(seed)
    model, classifier = backbone(), torch.nn.Linear(512, len(label))
    untrained = score(model, query, gallery)
    params = list(model.parameters()) + list(classifier.parameters())
    opt = torch.optim.Adam(params, lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, ITERS)
    gen = torch.Generator().manual_seed(seed)
    t = time.time()
    model.train()
    for _ in range(ITERS):
        idx = torch.randint(0, len(y), (BATCH,), generator=gen)
        logits = classifier(model(normalise(augment(train[0][idx], gen))))
        loss = torch.nn.functional.cross_entropy(logits, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    took = time.time() - t
    return untrained, score(model, query, gallery), took


@pytest.mark.slow  # trains a ResNet-18 with the true labels
def test_learnable_but_not_trivial(tmp_path):
    untrained, trained, took = measure(tmp_path, seed=0)
    print(f"untrained mAP {untrained:.1f}, trained mAP {trained:.1f} ({ITERS} it, {took:.0f} s)")
    assert untrained < UNTRAINED_MAX, f"random-init mAP {untrained:.1f}: the task is too easy without labels"
    assert trained > TRAINED_MIN, f"true-label mAP {trained:.1f}: the task is not learnable enough"
    assert trained - untrained > 25


if __name__ == "__main__":
    import argparse
    import tempfile
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--domain", default="a")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for s in map(int, a.seeds.split(",")):
            u, tr, took = measure(Path(tmp) / str(s), s, a.domain)
            print(f"domain {a.domain} seed {s}: untrained mAP {u:.1f}  trained mAP {tr:.1f}  "
                  f"({ITERS} it, {took:.0f} s)")
