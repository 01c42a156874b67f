"""TensorBoard through torch.utils.tensorboard, without TensorFlow.

tensorboard imports TensorFlow when it is installed (this monorepo's stack has it), and loading
TensorFlow next to torchvision can crash the process; the torch subprojects must never import
it. tensorboard's own switch for that is the presence of the module ``tensorboard.compat.notf``
(its "no_tensorflow" build target): registered here, tensorboard uses its TensorFlow stub.
"""
from __future__ import annotations

import sys
import types


def summary_writer(log_dir: str):
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir)
