"""The identity sampler's batch composition, the loaders and the transforms."""
from collections import Counter

import numpy as np
import torch

from cdsm.data import RandomErasing, RandomMultipleGallerySampler, build_train_loader
from cdsm.data.transforms import IMAGENET_MEAN, build_train_transform


def items_of(spec):
    """spec: {pid: [cam, cam, ...]} -> (path, pid, cam) items in pid order."""
    return [(f"img_{p}_{i}.jpg", p, c) for p, cams in spec.items() for i, c in enumerate(cams)]


def test_batches_are_k_images_of_one_id_from_other_cameras():
    # 6 ids seen by 3 cameras, 4 images each
    items = items_of({p: [0, 1, 2, 0] for p in range(6)})
    s = RandomMultipleGallerySampler(items, num_instances=4, seed=0)
    idx = list(s)
    assert len(idx) == len(s) == 24
    for block in np.array(idx).reshape(-1, 4):
        pids = {items[i][1] for i in block}
        assert len(pids) == 1
        anchor_cam = items[block[0]][2]
        # companions come from cameras other than the anchor's (there are 2 or 3 such images)
        assert all(items[i][2] != anchor_cam for i in block[1:])
    assert Counter(items[i][1] for i in idx) == {p: 4 for p in range(6)}


def test_without_replacement_when_there_are_enough_candidates():
    # id 0: anchor camera 0 plus five images from camera 1 (>= K candidates): no repeat
    items = items_of({0: [0, 1, 1, 1, 1, 1]})
    for seed in range(20):
        block = list(RandomMultipleGallerySampler(items, 4, seed=seed))
        if items[block[0]][2] == 0:
            assert len(set(block)) == 4
    # only 2 other-camera candidates for K - 1 = 3 draws: drawn with replacement
    items = items_of({0: [0, 1, 1]})
    blocks = [list(RandomMultipleGallerySampler(items, 4, seed=s)) for s in range(10)]
    assert all(len(b) == 4 for b in blocks)
    assert any(len(set(b)) < 4 for b in blocks)


def test_single_camera_and_single_image_ids():
    items = items_of({0: [2, 2, 2], 1: [1]})
    s = RandomMultipleGallerySampler(items, 4, seed=1)
    idx = list(s)
    assert len(idx) == len(s) == 5                     # id 1 contributes its anchor only
    by_pid = Counter(items[i][1] for i in idx)
    assert by_pid == {0: 4, 1: 1}
    zero = [i for i in idx if items[i][1] == 0]
    assert zero[0] not in zero[1:]                     # same camera: the anchor's *other* images


def test_seeded_and_different_passes():
    items = items_of({p: [0, 1, 2] for p in range(10)})
    a = RandomMultipleGallerySampler(items, 4, seed=5)
    b = RandomMultipleGallerySampler(items, 4, seed=5)
    first = list(a)
    assert first == list(b)
    assert list(a) != first                            # the next pass is a new draw


def test_outliers_are_ignored():
    items = [("a", -1, 0), ("b", 0, 0), ("c", 0, 1)]
    assert set(RandomMultipleGallerySampler(items, 2, seed=0)) <= {1, 2}


def test_train_loader_batch_composition(tiny_root):
    from cdsm.datasets import create

    train = create("market1501", tiny_root, verbose=False).train
    items = [(path, pid, cam, i) for i, (path, pid, cam) in enumerate(train)]
    loader = build_train_loader(items, 32, 16, batch_size=16, num_instances=4, iters=3, seed=0, pad=1)
    assert len(loader) == 3
    for _ in range(3):
        images, labels, cams, indexes = loader.next()
        assert images.shape == (16, 3, 32, 16)
        ids = set(labels.tolist())
        assert Counter(labels.tolist()) == {p: 4 for p in ids} and len(ids) == 4
        assert all(train[int(i)][1] == int(y) for i, y in zip(indexes, labels))


def test_random_erasing_fills_with_the_mean():
    torch.manual_seed(3)
    img = torch.full((3, 64, 32), 9.0)
    out = RandomErasing(probability=1.0)(img.clone())
    erased = out[0] != 9.0
    assert erased.any() and not erased.all()
    for c in range(3):
        assert torch.allclose(out[c][erased], torch.tensor(IMAGENET_MEAN[c]))
    assert torch.equal(RandomErasing(probability=0.0)(img.clone()), img)


def test_train_transform_is_seeded():
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 64, 3), dtype=np.uint8))
    t = build_train_transform(64, 32, pad=3)
    torch.manual_seed(1)
    a = t(img)
    torch.manual_seed(1)
    assert torch.equal(a, t(img)) and a.shape == (3, 64, 32)
