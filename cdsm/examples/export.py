"""Exports a trained CDSM model to ONNX (for deployment: onnxruntime, TensorRT, ...).

    python examples/export.py --checkpoint logs/market/model_best.pth.tar --out cdsm.onnx

The graph takes "images": N x 3 x H x W float32, already resized (bicubic) to H x W and
normalised with the ImageNet mean/std (what ``cdsm.FeatureExtractor`` feeds the network), with
a dynamic batch size N, and returns "features": N x D, the L2-normalised features that
``FeatureExtractor`` returns. H and W default to the checkpoint's training size; the model is
the teacher (``--which student`` for a full checkpoint's student). The preprocessing is stored
in the model's metadata_props (height, width, mean, std, interpolation) together with the
architecture and the feature size. Exported with torch.onnx.export (the dynamo exporter) and
written atomically; a missing or unreadable checkpoint is one ``error:`` line, exit status 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cdsm.errors import CDSMError, short_message
from cdsm.extractor import FeatureExtractor
from cdsm.utils.logging import console_logging
from cdsm.utils.runfiles import atomic_write, one_line_errors

log = logging.getLogger("cdsm.export")
OPSET = 18


class FeatureModel(nn.Module):
    """The exported function: images -> L2-normalised features (eval mode)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model(images))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Export a CDSM checkpoint to ONNX",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="model_best.pth.tar or checkpoint.pth.tar of a run")
    p.add_argument("--out", required=True, metavar="FILE.onnx")
    p.add_argument("--height", type=int, default=None, help="input height (default: the checkpoint's)")
    p.add_argument("--width", type=int, default=None, help="input width (default: the checkpoint's)")
    p.add_argument("--which", default="teacher", choices=("teacher", "student"),
                   help="which model of a full checkpoint.pth.tar")
    return p


def export_onnx(extractor: FeatureExtractor, out, height: int, width: int) -> Path:
    """Writes the ONNX model of ``extractor``'s network for height x width inputs to ``out``."""
    model = FeatureModel(extractor.model.cpu()).eval()
    example = torch.zeros(2, 3, height, width)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=["images"],
                                    output_names=["features"], dynamic_shapes={"images": {0: batch}},
                                    opset_version=OPSET, optimize=True, verbose=False)
    proto = program.model_proto
    meta = {"height": str(height), "width": str(width), "mean": json.dumps(list(extractor.mean)),
            "std": json.dumps(list(extractor.std)), "interpolation": "bicubic", "color": "RGB",
            "scale": "pixels / 255, then (x - mean) / std", "arch": str(extractor.settings["arch"]),
            "pooling_type": str(extractor.settings["pooling_type"]),
            "feature_dim": str(extractor.feature_dim), "method": "cdsm"}
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    return atomic_write(out, lambda f: f.write(data))


def run(args) -> int:
    for name in ("height", "width"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CDSMError(f"--{name} must be >= 1, got {value}")
    t0 = time.perf_counter()
    extractor = FeatureExtractor(args.checkpoint, device="cpu", which=args.which)
    height = args.height or extractor.height
    width = args.width or extractor.width
    out = export_onnx(extractor, args.out, height, width)
    log.info(f"==> {out}: {extractor.settings['arch']} teacher, images N x 3 x {height} x {width} -> "
             f"features N x {extractor.feature_dim}; {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    console_logging()
    return one_line_errors(lambda: run(args), (CDSMError,), describe=short_message)


if __name__ == "__main__":
    sys.exit(main())
