"""One training epoch with the repelled loss (Open-ReID's Trainer, spec B5/B6).

``amp`` "bf16" / "fp16" runs the model's forward under ``torch.autocast`` (fp16 with a GradScaler
on CUDA); the embeddings are cast to fp32 before the loss and the memory update.

Distributed (torchrun): each rank trains on its contiguous slice of the global batch. ExLoss is
a per-sample cross-entropy averaged over the batch against the memory from before the update,
so nothing couples the samples: with equal slices, DDP's average of the ranks' gradients is the
gradient of the global mean, the single-process gradient. The memory update does couple them
(sample by sample in batch order): every rank gathers the detached embeddings and labels of the
whole global batch in rank order and applies the single-process update, so the memory stays
identical on every rank. The logged loss and precision are the means over the ranks.
"""
from __future__ import annotations

import math
import time
from itertools import islice

import torch
from tqdm import tqdm

from .utils import distributed as du
from .utils.meters import AverageMeter

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# added to the non-finite-loss error of a bf16 run on a CPU (the root README has the measurements)
BF16_CPU_HINT = (" With bf16 on a CPU, inputs under 48 pixels wide also cause it: oneDNN's strided bf16 "
                 "convolutions are wrong on feature maps 1-2 columns wide (root README, 'bf16 on a CPU').")


class NaNLossError(FloatingPointError):
    """The loss became NaN or inf; the message names the step, epoch and iteration."""


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy of the logits against the pseudo-labels ("Prec" in the logs)."""
    return (outputs.argmax(dim=1) == targets).float().mean().item()


class Trainer:
    def __init__(self, model, criterion, device="cpu", amp: str = "off"):
        if amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
        self.model = model
        self.criterion = criterion
        self.device = torch.device(device)
        self.amp_dtype = AMP_DTYPES[amp]
        cuda_fp16 = amp == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if cuda_fp16 else None

    def train(self, epoch: int, data_loader, optimizer, step: int | None = None, print_freq: int = 1,
              writer=None, global_step: int = 0, progress: bool = True, max_iters: int | None = None) -> dict:
        """One epoch: every batch of ``data_loader``, or its first ``max_iters`` (``--max_iters``)."""
        self.model.train()  # End2End_AvgPooling.train keeps the fixed BNs in eval mode
        batch_time, data_time = AverageMeter(), AverageMeter()
        losses, precisions = AverageMeter(), AverageMeter()
        end = time.time()
        total = len(data_loader) if max_iters is None else min(len(data_loader), max_iters)
        bar = tqdm(islice(data_loader, total), total=total, desc=f"step {step} epoch {epoch}", leave=False,
                   disable=not progress, mininterval=1.0)
        for i, (imgs, _, targets) in enumerate(bar):
            data_time.update(time.time() - end)
            imgs = imgs.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                embeddings, _ = self.model(imgs)
            embeddings = embeddings.float()
            loss, outputs = self.criterion(embeddings, targets)
            prec = accuracy(outputs.detach(), targets)
            both = du.mean_over_ranks(torch.stack([loss.detach(), loss.new_tensor(prec)]))
            loss_value, prec = both.tolist()
            if not math.isfinite(loss_value):   # the same on every rank: all stop together
                raise NaNLossError(
                    f"the loss is {loss_value} at step {step}, epoch {epoch}, iteration {i + 1}/"
                    f"{total}; stopping (lower the learning rate or check the inputs). "
                    "The last checkpoint holds the state before this epoch."
                    + (BF16_CPU_HINT if self.amp_dtype is torch.bfloat16 and self.device.type == "cpu"
                       else ""))
            losses.update(loss_value, targets.size(0))
            precisions.update(prec, targets.size(0))
            optimizer.zero_grad()
            if self.scaler is None:
                loss.backward()
                optimizer.step()
            else:
                self.scaler.scale(loss).backward()
                self.scaler.step(optimizer)
                self.scaler.update()
            # after the gradient; distributed: the whole global batch, in rank order, on every rank
            self.criterion.update_memory(du.gather_equal(embeddings.detach()), du.gather_equal(targets))
            batch_time.update(time.time() - end)
            end = time.time()
            if writer is not None:
                writer.add_scalar("train/loss", loss_value, global_step + i)
                writer.add_scalar("buc/prec", prec, global_step + i)   # BUC's own: memory accuracy
            bar.set_postfix(loss=f"{losses.avg:.3f}", prec=f"{precisions.avg:.2%}")
            if (i + 1) % print_freq == 0:
                print(f"Epoch: [{epoch}][{i + 1}/{total}]\t"
                      f"Time {batch_time.val:.3f} ({batch_time.avg:.3f})\t"
                      f"Data {data_time.val:.3f} ({data_time.avg:.3f})\t"
                      f"Loss {losses.val:.3f} ({losses.avg:.3f})\t"
                      f"Prec {precisions.val:.2%} ({precisions.avg:.2%})\t")
        return {"loss": losses.avg, "prec": precisions.avg, "iterations": total}
