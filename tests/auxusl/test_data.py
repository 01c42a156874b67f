"""Clip sampling (the original's start-index quirk and cycling), the identity sampler, transforms."""

import random

import numpy as np
import torch

from auxusl.data import RandomErasing, RandomMultipleGallerySampler, clip_indices


def test_clip_start_never_draws_the_last_full_window():
    rng = random.Random(0)
    starts = {clip_indices(10, 4, rng)[0][0] for _ in range(2000)}
    assert starts == {0, 1, 2, 3, 4, 5}  # [0, n - seq_len - 1]: the window 6..9 is never drawn
    clip, sampled = clip_indices(10, 4, random.Random(1))
    assert clip == sampled == list(range(clip[0], clip[0] + 4))


def test_short_tracklets_are_cycled():
    assert clip_indices(2, 4, random.Random(0)) == ([0, 1, 0, 1], [0, 1])
    assert clip_indices(3, 8, random.Random(0)) == ([0, 1, 2, 0, 1, 2, 0, 1], [0, 1, 2])
    assert clip_indices(5, 5, random.Random(0)) == ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])  # start in [0, 0]


def test_sampler_prefers_other_cameras():
    # id 0: tracklets 0-2 in camera 0, 3 in camera 1; id 1: one tracklet; id 2: two, one camera
    items = [
        (("a",), 0, 0),
        (("b",), 0, 0),
        (("c",), 0, 0),
        (("d",), 0, 1),
        (("e",), 1, 0),
        (("f",), 2, 3),
        (("g",), 2, 3),
    ]
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002
    s = RandomMultipleGallerySampler(items, 4)
    assert len(s) == 12 and s.pass_length() == 9
    out = list(iter(s))
    groups, i = [], 0
    while i < len(out):
        n = 1 if items[out[i]][1] == 1 else 4
        groups.append(out[i : i + n])
        i += n
    assert sorted(items[g[0]][1] for g in groups) == [0, 1, 2]
    for g in groups:
        pid = items[g[0]][1]
        assert {items[j][1] for j in g} == {pid}
        if pid == 0 and g[0] != 3:
            assert g[1:] == [3, 3, 3]  # the only other-camera tracklet, drawn with replacement
        if pid == 2:
            assert set(g[1:]) == {5, 6} - {g[0]}  # no other camera: its other tracklets


def test_random_erasing_uses_python_random():
    img = torch.zeros(3, 64, 32)
    random.seed(3)
    a = RandomErasing(1.0, mean=(1.0, 2.0, 3.0))(img.clone())
    random.seed(3)
    b = RandomErasing(1.0, mean=(1.0, 2.0, 3.0))(img.clone())
    assert torch.equal(a, b) and (a[2] == 3.0).any() and set(a[0].unique().tolist()) == {0.0, 1.0}
