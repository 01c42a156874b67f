"""3C's learning-rate schedules (``utils/lr_scheduler.py``, from fast-reid), stepped once per epoch.

WarmupMultiStepLR (``--warmup-version v1``): at epoch e,

    lr_e = base_lr * w_e * gamma ** #{milestones <= e}
    w_e  = warmup_factor * (1 - e / warmup_iters) + e / warmup_iters   for e < warmup_iters, else 1

WarmupMultiStepLRv2 (``v2``): during the warm-up, alpha = (e + 1) / warmup_iters (0 at e = 0)
and the rate is further multiplied by ``warmup_lr_factor``.

3C's milestones are warmup_iters + lr_steps * x for x = 1..98 (30, 50, 70, ... with the
defaults), so with base 3.5e-4: epoch 0 = 3.5e-5 rising to 0.91x at epoch 9, 3.5e-4 for epochs
10-29, 3.5e-5 for 30-49, 3.5e-6 for 50-69.
"""
from __future__ import annotations

from bisect import bisect_right

from torch.optim.lr_scheduler import LRScheduler


def milestones(warmup_iters: int, lr_steps: int) -> list[int]:
    return [warmup_iters + x * lr_steps for x in range(1, 99)]


class WarmupMultiStepLR(LRScheduler):
    def __init__(self, optimizer, milestones, gamma: float = 0.1, warmup_factor: float = 1.0 / 3,
                 warmup_iters: int = 500, warmup_method: str = "linear", last_epoch: int = -1):
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {milestones}")
        if warmup_method not in ("constant", "linear"):
            raise ValueError(f"warmup_method must be 'constant' or 'linear', got {warmup_method!r}")
        self.milestones = list(milestones)
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def factor(self, epoch: int) -> float:
        w = 1.0
        if epoch < self.warmup_iters:
            if self.warmup_method == "constant":
                w = self.warmup_factor
            else:
                alpha = epoch / self.warmup_iters
                w = self.warmup_factor * (1 - alpha) + alpha
        return w * self.gamma ** bisect_right(self.milestones, epoch)

    def get_lr(self):
        f = self.factor(self.last_epoch)
        return [base_lr * f for base_lr in self.base_lrs]


class WarmupMultiStepLRv2(WarmupMultiStepLR):
    def __init__(self, optimizer, milestones, gamma: float = 0.1, warmup_lr_factor: float = 1.0,
                 warmup_factor: float = 1.0 / 3, warmup_iters: int = 500, warmup_method: str = "linear",
                 last_epoch: int = -1):
        self.warmup_lr_factor = warmup_lr_factor
        super().__init__(optimizer, milestones, gamma, warmup_factor, warmup_iters, warmup_method, last_epoch)

    def factor(self, epoch: int) -> float:
        w, lr_factor = 1.0, 1.0
        if epoch < self.warmup_iters:
            if self.warmup_method == "constant":
                w = self.warmup_factor
            else:
                alpha = 0.0 if epoch == 0 else (epoch + 1) / self.warmup_iters
                w = self.warmup_factor * (1 - alpha) + alpha
            lr_factor = self.warmup_lr_factor
        return lr_factor * w * self.gamma ** bisect_right(self.milestones, epoch)


def build_scheduler(optimizer, version: str = "v1", warmup_iters: int = 10, warmup_factor: float = 0.1,
                    warmup_lr_factor: float = 1.0, lr_steps: int = 20, gamma: float = 0.1):
    steps = milestones(warmup_iters, lr_steps)
    if version == "v2":
        return WarmupMultiStepLRv2(optimizer, steps, gamma=gamma, warmup_lr_factor=warmup_lr_factor,
                                   warmup_factor=warmup_factor, warmup_iters=warmup_iters)
    if version != "v1":
        raise ValueError(f"unknown --warmup-version {version!r}; valid: v1, v2")
    return WarmupMultiStepLR(optimizer, steps, gamma=gamma, warmup_factor=warmup_factor,
                             warmup_iters=warmup_iters)
