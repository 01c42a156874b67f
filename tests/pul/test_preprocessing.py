"""Loading, caffe preprocessing and the augmentation's geometry (spec A3)."""
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image

from pul.data import BatchStream, steps_per_epoch
from pul.preprocessing import (
    CAFFE_MEAN_BGR,
    ImageLoadError,
    affine_matrix,
    caffe_preprocess,
    draw_affine_params,
    load_image,
    load_images,
    warp_nearest,
)


def ramp(h, w):
    """An image whose pixel (r, c) encodes its own coordinates: R = r, G = c, B = r + c."""
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([r, c, r + c], axis=-1).astype(np.uint8)[None]


def test_pure_translation_moves_pixels_and_replicates_edges():
    img = ramp(10, 6)
    out = warp_nearest(img, np.array([[0.0, 3.0, -2.0]]))[0]   # tx = 3 rows, ty = -2 columns
    # output (r, c) reads input (r + 3, c - 2), clamped into the image (edge replication)
    for r in range(10):
        for c in range(6):
            assert tuple(out[r, c]) == tuple(img[0, min(r + 3, 9), max(c - 2, 0)])
    assert (out[7:, :, 0] == 9).all()     # the last row repeated
    assert (out[:, :2, 1] == 0).all()     # the first column repeated


def test_rotation_by_90_degrees_about_the_keras_centre():
    # Keras 2.0.4 anchors at (H/2 + 0.5, W/2 + 0.5) = (4.5, 4.5) for an 8x8 image (not 3.5)
    img = ramp(8, 8)
    out = warp_nearest(img, np.array([[math.pi / 2, 0.0, 0.0]]))[0]
    # input coordinate = R(90) (out - o) + o: (r, c) -> (o - (c - o), o + (r - o)) = (9 - c, r)
    for r in range(8):
        for c in range(8):
            src = (min(max(9 - c, 0), 7), r)
            assert tuple(out[r, c]) == tuple(img[0, src[0], src[1]]), (r, c)


def test_matrix_is_rotation_then_shift_conjugated_by_the_centre():
    m = affine_matrix(0.3, 2.0, -1.5, 20, 10)
    c, s = math.cos(0.3), math.sin(0.3)
    o = np.array([10.5, 5.5])
    out_pt = np.array([4.0, 7.0])
    expect = np.array([[c, -s], [s, c]]) @ (out_pt - o + np.array([2.0, -1.5])) + o
    np.testing.assert_allclose(m[:2, :2] @ out_pt + m[:2, 2], expect)


@pytest.mark.parametrize("shape", [(64, 32), (31, 17), (224, 224)])
def test_warp_equals_scipy_affine_transform_order0_nearest(shape):
    """The reference is what Keras 2.0.4 ran: scipy.ndimage.affine_transform per channel."""
    h, w = shape
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)
    params = draw_affine_params(rng, 4, h, w)
    out = warp_nearest(imgs, params)
    for i in range(4):
        m = affine_matrix(*params[i], h, w)
        for ch in range(3):
            ref = ndi.affine_transform(imgs[i, :, :, ch], m[:2, :2], m[:2, 2], order=0, mode="nearest")
            np.testing.assert_array_equal(out[i, :, :, ch], ref)


def test_parameter_ranges():
    rng = np.random.default_rng(1)
    p = draw_affine_params(rng, 4000, 224, 112)
    assert np.abs(p[:, 0]).max() <= math.radians(20) and np.abs(p[:, 0]).max() > math.radians(19.5)
    assert np.abs(p[:, 1]).max() <= 0.2 * 224 and np.abs(p[:, 1]).max() > 0.19 * 224   # rows: height
    assert np.abs(p[:, 2]).max() <= 0.2 * 112 and np.abs(p[:, 2]).max() > 0.19 * 112   # columns: width
    assert draw_affine_params(rng, 3, 10, 10, 0, 0, 0).tolist() == [[0, 0, 0]] * 3


def test_warping_uint8_then_mean_equals_mean_then_warp():
    """The original warped mean-subtracted floats; order 0 + edge fill commute with the mean."""
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (2, 24, 12, 3), dtype=np.uint8)
    params = draw_affine_params(rng, 2, 24, 12)
    np.testing.assert_array_equal(caffe_preprocess(warp_nearest(imgs, params)),
                                  warp_nearest(caffe_preprocess(imgs), params))


def test_caffe_preprocessing_equals_keras():
    from keras.applications.resnet50 import preprocess_input
    x = np.random.default_rng(3).integers(0, 256, (2, 5, 4, 3)).astype(np.uint8)
    np.testing.assert_allclose(caffe_preprocess(x), preprocess_input(x.astype(np.float32).copy()), atol=1e-4)
    np.testing.assert_allclose(caffe_preprocess(np.zeros((1, 1, 3), np.uint8))[0, 0], -CAFFE_MEAN_BGR)
    # BGR order: a pure red pixel ends up in the last channel
    red = caffe_preprocess(np.array([[[255, 0, 0]]], np.uint8))[0, 0]
    np.testing.assert_allclose(red, [-103.939, -116.779, 255 - 123.68], rtol=1e-6)


def test_load_stretches_with_nearest_resampling(tmp_path):
    src = np.zeros((128, 64, 3), np.uint8)
    src[:, 32:] = 200                      # left half black, right half grey
    Image.fromarray(src).save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png", (224, 224))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 200}           # nearest: no interpolated values
    assert (out[:, :112] == 0).all() and (out[:, 112:] == 200).all()   # stretched, not padded
    both = load_images([tmp_path / "x.png"] * 3, (64, 32), progress=False)
    assert both.shape == (3, 64, 32, 3)


def test_corrupted_image_error_names_the_file(tmp_path):
    good = tmp_path / "0001_c1_f0000001.jpg"
    Image.fromarray(np.zeros((8, 4, 3), np.uint8)).save(good)
    bad = tmp_path / "0002_c2_f0000002.jpg"
    bad.write_bytes(good.read_bytes()[:40])          # a truncated JPEG
    with pytest.raises(ImageLoadError, match="0002_c2_f0000002.jpg"):
        load_images([good, bad], (8, 4), progress=False)
    text = tmp_path / "0003_c1_f0000003.jpg"
    text.write_text("not an image")
    with pytest.raises(ImageLoadError, match="0003_c1_f0000003.jpg.*corrupted"):
        load_image(text, (8, 4))


def test_batch_stream_follows_keras_iterator_semantics():
    """Passes over fresh permutations in batches of B (the last one smaller), never reset between
    epochs; an epoch is ceil(N/B + 1) batches (fit_generator with steps_per_epoch = N/B + 1)."""
    n, b = 10, 4
    assert steps_per_epoch(n, b) == 4 and steps_per_epoch(16, 16) == 2 and steps_per_epoch(17, 16) == 3
    imgs = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 2, 3), np.uint8)
    s = BatchStream(imgs, np.arange(n)[:, None], b, seed=(0, 1, 2), augment=False)
    sizes = [len(s.indices(g)) for g in range(6)]
    assert sizes == [4, 4, 2, 4, 4, 2]
    first, second = np.concatenate([s.indices(g) for g in range(3)]), np.concatenate(
        [s.indices(g) for g in range(3, 6)])
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert list(first) != list(second)                       # a new permutation per pass
    x, y = s.batch(4)
    np.testing.assert_array_equal(y[:, 0], s.indices(4))     # targets follow their images
    np.testing.assert_allclose(x[:, 0, 0, 2], s.indices(4) - 123.68, rtol=1e-6)
    # stateless: the generator started at step 5 yields batch 5, whatever ran before
    gen = s.generator(5)
    np.testing.assert_array_equal(next(gen)[1], s.batch(5)[1])
    aug = BatchStream(imgs, np.arange(n)[:, None], b, seed=(0, 1, 2), augment=True)
    np.testing.assert_array_equal(aug.batch(3)[0], aug.batch(3)[0])
