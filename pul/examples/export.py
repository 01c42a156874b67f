#!/usr/bin/env python
"""Exports a trained PUL model as a TensorFlow SavedModel (for TF Serving, TFLite converters, tf2onnx).

    python examples/export.py --checkpoint LOGS/checkpoints/25.keras --out pul_savedmodel

The SavedModel's endpoint ``serve`` (also its default serving signature) takes ``images``: float32
(N, H, W, 3), already preprocessed as PUL does it (RGB image stretched to H x W with nearest
resampling, channels reversed to BGR, the ImageNet mean (103.939, 116.779, 123.68) subtracted, no
scaling), any batch size; it returns ``features``: (N, D) float32, the L2-normalised avg_pool
features of the inference-mode network, what ``pul.FeatureExtractor`` returns. H and W are the
checkpoint's input size (224 x 224 for the paper's models). The preprocessing and the checkpoint's
configuration are written beside the graph, in OUT/assets.extra/pul_preprocessing.json.

    import tensorflow as tf
    m = tf.saved_model.load("pul_savedmodel")
    feats = m.serve(images)["features"]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pul  # noqa: F401  (sets KERAS_BACKEND=tensorflow)
from pul import PULError

METADATA = "pul_preprocessing.json"


def export_saved_model(checkpoint, out) -> dict:
    """Writes the SavedModel of ``checkpoint`` into the folder ``out`` (made through a temporary
    folder and a rename: never a half-written model); returns its preprocessing metadata."""
    import keras
    import tensorflow as tf

    from pul.checkpoint import read_config
    from pul.model import feature_model, load_model
    from pul.preprocessing import CAFFE_MEAN_BGR

    out = Path(out)
    model = load_model(checkpoint, compile=False)
    fm = feature_model(model)
    h, w = (int(s) for s in model.input_shape[1:3])

    def features(images):
        f = fm(images, training=False)
        f = tf.reshape(f, [tf.shape(f)[0], -1])
        return {"features": tf.math.l2_normalize(f, axis=1)}

    archive = keras.export.ExportArchive()
    archive.track(fm)
    archive.add_endpoint("serve", features,
                         input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="images")])
    meta = {"input": "images", "layout": "NHWC", "dtype": "float32", "height": h, "width": w,
            "channel_order": "BGR", "mean": [float(m) for m in CAFFE_MEAN_BGR], "std": None,
            "pixel_range": "0-255 (no scaling)", "resize": "stretch to height x width, nearest",
            "output": "features", "feature_dim": int(fm.output_shape[-1]), "l2_normalised": True,
            "checkpoint": str(checkpoint), "config": read_config(checkpoint)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        archive.write_out(str(tmp), verbose=False)
        (tmp / "assets.extra").mkdir(exist_ok=True)
        (tmp / "assets.extra" / METADATA).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o777 & ~_umask())
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a .keras file written by examples/train.py")
    p.add_argument("--out", required=True, help="the SavedModel folder to create (must not exist)")
    a = p.parse_args(argv)
    try:
        if not Path(a.checkpoint).is_file():
            raise PULError(f"checkpoint '{a.checkpoint}' does not exist")
        if os.path.lexists(a.out):
            raise PULError(f"--out {a.out} already exists; remove it or choose another folder "
                           "(an export never writes over anything)")
        t = time.perf_counter()
        meta = export_saved_model(a.checkpoint, a.out)
    except PULError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        from pul.runfiles import disk_full_line
        line = disk_full_line(exc) or f"error: cannot write {a.out}: {exc.strerror or exc}"
        print(line, file=sys.stderr)
        return 2
    print(f"SavedModel {a.out}: images (N, {meta['height']}, {meta['width']}, 3) -> features "
          f"(N, {meta['feature_dim']}), {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
