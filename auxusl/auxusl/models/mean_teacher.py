"""The EMA teacher ("mean teacher") of AuxUSL.

After every optimizer step, with t = epoch * (iterations of this epoch) + i (the original's
count; not a true global step, since DTI changes the iterations per epoch):

    alpha_t = min(1 - 1 / (t + 1), ALPHA)            ALPHA = MUTUAL_TEACH.ALPHA = 0.999
    theta_teacher <- alpha_t * theta_teacher + (1 - alpha_t) * theta_student

over the *parameters* only: the teacher's BatchNorm statistics come from its own train-mode
forward passes on the training batches.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def create_teacher(student: nn.Module) -> nn.Module:
    """A copy of the student whose parameters take no gradient."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def ema_decay(step: int, max_decay: float = 0.999) -> float:
    return min(1.0 - 1.0 / (step + 1), max_decay)


@torch.no_grad()
def update_teacher(student: nn.Module, teacher: nn.Module, step: int, max_decay: float = 0.999) -> float:
    alpha = ema_decay(step, max_decay)
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
    return alpha
