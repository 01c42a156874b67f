"""Export a trained 3C model to ONNX [added].

    python examples/export.py --checkpoint logs/log/model_best.pth.tar --out model.onnx

The graph is the eval-mode network (ResNet, GeM/average pooling, BN neck, L2 normalisation):
input "images" (N x 3 x H x W float32, already resized to H x W and normalised with the ImageNet
mean/std), output "features" (N x D, rows L2-normalised) = what ccc.FeatureExtractor returns.
The batch size is dynamic; H x W default to the checkpoint's training size. The preprocessing is
stored in the model's metadata_props: height, width, mean, std (JSON lists), resize "bilinear",
and the arch and pooling. Exported with torch.onnx.export's default (dynamo) exporter, checked
with onnx.checker, written atomically. A missing or unreadable checkpoint is one ``error:`` line,
exit 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings

import torch

from ccc.errors import CCCError, short_message
from ccc.extractor import FeatureExtractor
from ccc.utils.logging import console_logging
from ccc.utils.runfiles import atomic_write, one_line_errors

log = logging.getLogger("ccc.export")
OPSET = 18


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Export a trained 3C checkpoint to ONNX (dynamic batch)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", type=str, required=True, metavar="PATH")
    p.add_argument("--out", type=str, required=True, metavar="MODEL.onnx")
    p.add_argument("--height", type=int, default=None, help="input height (default: the checkpoint's)")
    p.add_argument("--width", type=int, default=None, help="input width (default: the checkpoint's)")
    g = p.add_argument_group("only for checkpoints without a stored configuration")
    g.add_argument("--arch", type=str, default=None)
    g.add_argument("--pooling-type", type=str, default=None, choices=("avg", "gem"))
    return p


def export_onnx(fx: FeatureExtractor, height: int, width: int):
    """The ONNX ModelProto of the extractor's model, with the preprocessing in its metadata."""
    import onnx
    model = fx.model.cpu().eval()
    example = torch.zeros(2, 3, height, width)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=["images"],
                                    output_names=["features"], dynamic_shapes={"x": {0: batch}},
                                    opset_version=OPSET, verbose=False)
    proto = program.model_proto
    meta = {"height": str(height), "width": str(width), "mean": json.dumps(list(fx.mean)),
            "std": json.dumps(list(fx.std)), "resize": "bilinear", "input_range": "RGB in [0, 1] before "
            "normalisation", "arch": fx.arch, "pooling_type": fx.pooling_type, "method": "ccc (3C)"}
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto


def run(args) -> int:
    fx = FeatureExtractor(args.checkpoint, device="cpu", arch=args.arch, pooling_type=args.pooling_type,
                          height=args.height, width=args.width)
    t0 = time.perf_counter()
    proto = export_onnx(fx, fx.height, fx.width)
    data = proto.SerializeToString()
    atomic_write(args.out, lambda f: f.write(data))
    log.info(f"==> {args.checkpoint} -> {args.out} ({fx.arch}, input images N x 3 x {fx.height} x "
             f"{fx.width}, output features N x {fx.feature_dim}; {len(data) / 2**20:.1f} MB, "
             f"{time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("height", "width"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    console_logging()
    return one_line_errors(lambda: run(args), (CCCError,), describe=short_message)


if __name__ == "__main__":
    sys.exit(main())
