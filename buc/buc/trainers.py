"""One training epoch with the repelled loss (Open-ReID's Trainer, spec B5/B6)."""
from __future__ import annotations

import math
import time

import torch
from tqdm import tqdm

from .utils.meters import AverageMeter


class NaNLossError(FloatingPointError):
    """The loss became NaN or inf; the message names the step, epoch and iteration."""


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy of the logits against the pseudo-labels ("Prec" in the logs)."""
    return (outputs.argmax(dim=1) == targets).float().mean().item()


class Trainer:
    def __init__(self, model, criterion, device="cpu"):
        self.model = model
        self.criterion = criterion
        self.device = torch.device(device)

    def train(self, epoch: int, data_loader, optimizer, step: int | None = None, print_freq: int = 1,
              writer=None, global_step: int = 0, progress: bool = True) -> dict:
        self.model.train()  # End2End_AvgPooling.train keeps the fixed BNs in eval mode
        batch_time, data_time = AverageMeter(), AverageMeter()
        losses, precisions = AverageMeter(), AverageMeter()
        end = time.time()
        bar = tqdm(data_loader, desc=f"step {step} epoch {epoch}", leave=False, disable=not progress,
                   mininterval=1.0)
        for i, (imgs, _, targets) in enumerate(bar):
            data_time.update(time.time() - end)
            imgs = imgs.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            embeddings, _ = self.model(imgs)
            loss, outputs = self.criterion(embeddings, targets)
            if not math.isfinite(loss.item()):
                raise NaNLossError(
                    f"the loss is {loss.item()} at step {step}, epoch {epoch}, iteration {i + 1}/"
                    f"{len(data_loader)}; stopping (lower the learning rate or check the inputs). "
                    "The last checkpoint holds the state before this epoch.")
            prec = accuracy(outputs.detach(), targets)
            losses.update(loss.item(), targets.size(0))
            precisions.update(prec, targets.size(0))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            self.criterion.update_memory(embeddings.detach(), targets)   # after the gradient
            batch_time.update(time.time() - end)
            end = time.time()
            if writer is not None:
                writer.add_scalar("train/loss", loss.item(), global_step + i)
                writer.add_scalar("train/prec", prec, global_step + i)
            bar.set_postfix(loss=f"{losses.avg:.3f}", prec=f"{precisions.avg:.2%}")
            if (i + 1) % print_freq == 0:
                print(f"Epoch: [{epoch}][{i + 1}/{len(data_loader)}]\t"
                      f"Time {batch_time.val:.3f} ({batch_time.avg:.3f})\t"
                      f"Data {data_time.val:.3f} ({data_time.avg:.3f})\t"
                      f"Loss {losses.val:.3f} ({losses.avg:.3f})\t"
                      f"Prec {precisions.val:.2%} ({precisions.avg:.2%})\t")
        return {"loss": losses.avg, "prec": precisions.avg, "iterations": len(data_loader)}
