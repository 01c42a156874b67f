"""Exports a trained BUC model to ONNX: the per-frame network that gives BUC's features.

    python examples/export.py --checkpoint logs/market1501/model_best.pth.tar --out buc.onnx

Input ``images``: (N, 3, H, W) float32, already resized to H x W (bilinear) and normalised with the
ImageNet mean/std (``buc.utils.data.transforms.test_transform``); N is dynamic; H, W default to the
checkpoint's test size. Outputs: ``features`` (N, d), the L2-normalised pool5 of each image,
equal to what ``buc.FeatureExtractor`` returns for one image; ``pool5`` (N, d), the same before
normalisation. A tracklet's feature (video models, and BUC's evaluator) is
``normalize(mean over its frames of pool5)``: average the ``pool5`` rows of its frames, then divide
by the L2 norm (averaging the normalised ``features`` would weigh frames differently). The
embedding branch of training is not exported (BUC never uses it for features).

The preprocessing is stored in the model's metadata_props: height, width, mean, std, resize,
feature, tracklet_pooling, arch. Written atomically. Bad input: one ``error:`` line, exit 2.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train.py

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from buc import models  # noqa: E402
from buc.extractor import FeatureExtractor  # noqa: E402
from buc.utils.runfiles import BUCError, atomic_write, one_line_errors  # noqa: E402


class FrameFeatures(nn.Module):
    """images (N, 3, H, W) -> (L2-normalised pool5, pool5): the network of BUC's features."""

    def __init__(self, cnn: nn.Module):
        super().__init__()
        self.cnn = cnn

    def forward(self, images):
        pool5 = self.cnn(images)
        return F.normalize(pool5, p=2, dim=1), pool5


def metadata(fx: FeatureExtractor, height: int, width: int) -> dict[str, str]:
    return {"height": str(height), "width": str(width), "mean": json.dumps(list(fx.mean)),
            "std": json.dumps(list(fx.std)), "resize": "bilinear, to height x width (RectScale)",
            "input": "RGB in [0, 1], minus mean, divided by std; NCHW float32",
            "feature": "features = L2-normalised ResNet pool5 (BUC's evaluation feature)",
            "tracklet_pooling": "normalize(mean over frames of pool5)",
            "arch": str(fx.settings["arch"]), "method": "buc"}


def export_onnx(fx: FeatureExtractor, height: int, width: int):
    """The ONNX ModelProto of the per-frame network, with the preprocessing in its metadata."""
    import onnx

    net = FrameFeatures(fx.model.CNN).eval().cpu()
    example = torch.randn(2, 3, height, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (example,), input_names=["images"],
                                    output_names=["features", "pool5"],
                                    dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1)}},
                                    dynamo=True, verbose=False)
    proto = program.model_proto
    for key, value in metadata(fx, height, width).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="export a BUC checkpoint to ONNX (per-frame network)")
    p.add_argument("--checkpoint", required=True, help="model_best.pth.tar or checkpoint.pth.tar")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--height", type=int, default=None, help="input height (default: the checkpoint's)")
    p.add_argument("--width", type=int, default=None, help="input width (default: the checkpoint's)")
    g = p.add_argument_group("only for checkpoints of the original code (no stored settings)")
    g.add_argument("-a", "--arch", default=None, choices=models.names())
    g.add_argument("-f", "--fea", type=int, default=None)
    return p


def run(args) -> int:
    for name in ("height", "width"):
        value = getattr(args, name)
        if value is not None and value < 32:
            raise BUCError(f"--{name} {value}: the ResNet needs at least 32 pixels")
    fx = FeatureExtractor(args.checkpoint, device="cpu", arch=args.arch, fea=args.fea, height=args.height,
                          width=args.width)
    t0 = time.time()
    proto = export_onnx(fx, fx.height, fx.width)
    data = proto.SerializeToString()
    atomic_write(args.out, lambda f: f.write(data))
    print(f"=> {args.out}: input images (N, 3, {fx.height}, {fx.width}), outputs features/pool5 "
          f"(N, {fx.dim}); exported in {time.time() - t0:.1f} s")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if Path(args.out).suffix != ".onnx":
        print(f"error: --out {args.out}: the file must end in .onnx", file=sys.stderr)
        return 2
    return one_line_errors(lambda: run(args), (BUCError,))


if __name__ == "__main__":
    sys.exit(main())
