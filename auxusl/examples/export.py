"""The per-frame network of a trained AuxUSL checkpoint as ONNX (the teacher).

    python examples/export.py --checkpoint log/x/model_mAP_best.pth.tar --out model.onnx

Input "images": (N, 3, H, W) float32 frames, already resized to H x W (default: the checkpoint's
INPUT.SIZE_TEST) and normalised with INPUT.PIXEL_MEAN / PIXEL_STD (0-1 pixel scale); output
"features": (N, D) per-frame BN-neck features, L2-normalised. N is dynamic. The tracklet feature
that the evaluation ranks (and ``auxusl.FeatureExtractor`` returns) is the mean of its frames'
"features" rows, then L2-normalised by FeatureExtractor; this pooling is not in the graph. The
preprocessing (height, width, mean, std, pooling) is stored in the model's metadata_props.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from auxusl.errors import AuxUSLError, short_message
from auxusl.utils.runfiles import atomic_write

POOLING = "tracklet feature = mean over its frames of 'features', then L2-normalised"


class FrameFeatures(nn.Module):
    """frames -> L2-normalised BN-neck features (the evaluation's per-frame feature)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        # frame_features' global average pool written as a mean over H, W (the same numbers; an
        # avg_pool2d whose kernel is the input's size does not export with a dynamic shape)
        x = self.model.base(images).mean(dim=(2, 3))
        return F.normalize(self.model.feat_bn(x))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="export an AuxUSL checkpoint's per-frame network to ONNX")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint written by train.py")
    p.add_argument("--out", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--height", type=int, default=None, help="input height (default: INPUT.SIZE_TEST)")
    p.add_argument("--width", type=int, default=None, help="input width (default: INPUT.SIZE_TEST)")
    return p


def export(checkpoint, out, height=None, width=None) -> dict:
    """Writes the ONNX model; returns its preprocessing (the metadata_props)."""
    import onnx

    from auxusl.extractor import checkpoint_config, load_teacher
    from auxusl.utils import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    cfg = checkpoint_config(ckpt)
    h, w = height or cfg.INPUT.SIZE_TEST[0], width or cfg.INPUT.SIZE_TEST[1]
    if h < 1 or w < 1:
        raise AuxUSLError(f"--height and --width must be >= 1, got {h} x {w}")
    net = FrameFeatures(load_teacher(ckpt, cfg, str(checkpoint))).eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, (torch.zeros(2, 3, h, w),), buf, input_names=["images"],
                          output_names=["features"], dynamic_axes={"images": {0: "N"}, "features": {0: "N"}},
                          dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    meta = {"height": str(h), "width": str(w), "mean": ",".join(str(float(x)) for x in cfg.INPUT.PIXEL_MEAN),
            "std": ",".join(str(float(x)) for x in cfg.INPUT.PIXEL_STD), "pixel_scale": "0-1 (RGB)",
            "arch": cfg.MODEL.ARCH, "pooling": POOLING}
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    atomic_write(Path(out), lambda f: f.write(model.SerializeToString()))
    return meta


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        if not Path(args.checkpoint).is_file():
            raise AuxUSLError(f"checkpoint {args.checkpoint} does not exist")
        meta = export(args.checkpoint, args.out, args.height, args.width)
    except AuxUSLError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (input images N x 3 x {meta['height']} x {meta['width']}, output features); "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
