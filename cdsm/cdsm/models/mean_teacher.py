"""The mean teacher of CDSM (inherited from HHCL): an exponential moving average of the student.

After every optimizer step t = epoch * iters + i (0-based, counted over the whole run):

    alpha_t = min(1 - 1 / (t + 1), 0.999)
    theta_teacher <- alpha_t * theta_teacher + (1 - alpha_t) * theta_student

for the *parameters only*. At t = 0 alpha is 0 (the teacher becomes a copy of the student); up
to t = 999 the teacher is the plain average of all student iterates, after that an EMA with
decay 0.999. Buffers (BatchNorm running statistics) are not averaged: the teacher keeps its own,
updated by its own train-mode forward passes on the training batches.
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
    """One EMA step of the teacher's parameters; returns the decay used."""
    alpha = ema_decay(step, max_decay)
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
    return alpha
