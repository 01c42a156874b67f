"""The video path: tracklet frame sampling, the preprocessor, and transforms."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from buc import datasets
from buc.bottom_up import BottomUp
from buc.models import create
from buc.utils.data import Preprocessor, sample_frames
from buc.utils.data import transforms as T


def test_training_sampling_without_then_with_replacement():
    random.seed(0)
    long = tuple(f"f{i:03d}.jpg" for i in range(40))
    s = sample_frames(long, 16, training=True, max_frames=900)
    assert len(s) == 16 and len(set(s)) == 16 and s == sorted(s)        # no repeats, name order
    short = tuple(f"f{i:03d}.jpg" for i in range(5))
    draws = [sample_frames(short, 16, training=True, max_frames=900) for _ in range(5)]
    assert all(len(d) == 16 and d == sorted(d) and set(d) <= set(short) for d in draws)
    assert any(len(set(d)) < 16 for d in draws)                          # with replacement
    exact = tuple(f"f{i:03d}.jpg" for i in range(16))
    assert sample_frames(exact, 16, training=True, max_frames=900) == list(exact)


def test_evaluation_takes_every_frame_up_to_max_frames():
    frames = tuple(f"f{i:04d}.jpg" for i in range(1000))
    assert sample_frames(frames[:900], 16, training=False, max_frames=900) == list(frames[:900])
    sub = sample_frames(frames, 16, training=False, max_frames=900)
    assert len(sub) == 900 and len(set(sub)) == 900


def test_preprocessor_on_a_synthetic_tracklet(tiny_root):
    ds = datasets.create("dukevideo", tiny_root, verbose=False)
    frames, *_ = ds.train[0]
    train = Preprocessor([frames], ds.images_dir, T.train_transform(64, 32), labels=[7], num_samples=16,
                         is_training=True)
    x, idx, label = train[0]
    assert x.shape == (16, 3, 64, 32) and (idx, label) == (0, 7)
    test = Preprocessor([frames], ds.images_dir, T.test_transform(64, 32), max_frames=900)
    x, _, label = test[0]
    assert x.shape == (len(frames), 3, 64, 32) and label == -1
    # test transform = resize + ImageNet normalisation, frame by frame, in order
    img = Image.open(f"{ds.images_dir}/{frames[0]}").convert("RGB").resize((32, 64), Image.BILINEAR)
    ref = (torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1)
           - torch.tensor(T.IMAGENET_MEAN)[:, None, None]) / torch.tensor(T.IMAGENET_STD)[:, None, None]
    assert torch.allclose(x[0], ref, atol=1e-5)


def test_random_sized_rect_crop():
    random.seed(1)
    img = Image.new("RGB", (64, 128))
    crop = T.RandomSizedRectCrop(256, 128)
    assert all(crop(img).size == (128, 256) for _ in range(20))
    assert T.RectScale(128, 64)(img) is img                 # already the right size: untouched
    wide = Image.new("RGB", (300, 20))                      # no aspect 2-3 crop fits: plain resize
    assert crop(wide).size == (128, 256)


def test_video_features_average_all_frames_of_a_tracklet(tiny_root):
    ds = datasets.create("mars", tiny_root, verbose=False)
    torch.manual_seed(0)
    model = create("resnet18", pretrained="none", embedding_size=16)
    bu = BottomUp(model, [r[0] for r in ds.train], ds.images_dir, is_video=True, height=64, width=32,
                  workers=0, embedding_size=16, progress=False)
    sample = ds.query[0][0]
    feats = bu.extract([sample])
    frames = torch.stack([T.test_transform(64, 32)(Image.open(f"{ds.images_dir}/{f}").convert("RGB"))
                          for f in sample])
    with torch.no_grad():
        per_frame = model.eval().CNN(frames)
    ref = torch.nn.functional.normalize(per_frame.mean(0, keepdim=True), dim=1).numpy()
    assert feats.shape == (1, 512)
    assert np.allclose(feats, ref, atol=1e-5)


def test_batched_extraction_of_unequal_tracklets_equals_batch_size_one(tiny_root):
    """Evaluation batches of several tracklets (--eval_batch_size > 1) with different frame
    counts: grouped by length, put back in dataset order, the same features as batch size 1."""
    ds = datasets.create("mars", tiny_root, verbose=False)
    samples = [r[0] for r in ds.query + ds.gallery][:12]
    samples[1] = samples[1][:3]          # unequal lengths inside one batch
    samples[4] = samples[4][:2]
    assert len({len(s) for s in samples[:5]}) > 1
    torch.manual_seed(0)
    model = create("resnet18", pretrained="none", embedding_size=16)
    kw = dict(is_video=True, height=64, width=32, workers=0, embedding_size=16, progress=False, batch_size=4)
    one = BottomUp(model, samples, ds.images_dir, eval_batch_size=1, **kw).extract(samples)
    five = BottomUp(model, samples, ds.images_dir, eval_batch_size=5, **kw).extract(samples)
    assert one.shape == five.shape == (12, 512)
    assert np.allclose(one, five, atol=1e-5)
    assert not np.allclose(five[1], five[2], atol=1e-3)   # rows are not merely all equal


def test_image_cache_decodes_each_file_once_and_gives_the_same_tensors(tiny_root, tmp_path):
    ds = datasets.create("dukevideo", tiny_root, verbose=False)
    frames = ds.train[0][0][:3]
    # a private copy of three frames, so that deleting them below proves the cache is read
    for f in frames:
        (tmp_path / f).write_bytes((Path(ds.images_dir) / f).read_bytes())
    plain = Preprocessor([frames], str(tmp_path), T.test_transform(64, 32))
    cache: dict = {}
    cached = Preprocessor([frames], str(tmp_path), T.test_transform(64, 32), cache=cache)
    first = cached[0][0]
    assert sorted(cache) == sorted(str(tmp_path / f) for f in frames)
    assert torch.equal(first, plain[0][0])
    for f in frames:
        (tmp_path / f).unlink()
    assert torch.equal(cached[0][0], first)                  # from memory: the files are gone
    # another Preprocessor of the same run (a later epoch, the evaluation) shares the cache
    again = Preprocessor([frames], str(tmp_path), T.test_transform(64, 32), cache=cache)
    assert torch.equal(again[0][0], first)
    # training transforms still run on every access: two draws of random crops/flips differ
    train = Preprocessor([frames], str(tmp_path), T.train_transform(64, 32), labels=[0], num_samples=3,
                         is_training=True, cache=cache)
    torch.manual_seed(0)
    random.seed(0)
    draws = [train[0][0] for _ in range(6)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
