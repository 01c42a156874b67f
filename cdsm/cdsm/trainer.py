"""One training epoch of CDSM: student + memory loss, memory update with the teacher, EMA.

Per iteration (``--iters`` of them; the sampler's stream restarts when it runs out):

    f = student(x)                       train mode, L2-normalised
    g = teacher(x)                       same augmented batch, no gradient, *train mode* (its
                                         BatchNorm statistics keep moving)
    loss = memory.loss(f, y)             e.g. CDSM's hybrid loss (memory/cm_hybrid_v5.py)
    loss.backward()
    memory.update(g, y, index)           diversity-sample mining with the teacher's features
    optimizer.step()
    teacher <- EMA(student), step t = epoch * iters + i

``amp`` "bf16" / "fp16" [added] runs the two forwards under ``torch.autocast`` (fp16 with a
GradScaler on CUDA); their outputs are cast to float32, so the memory and the loss stay fp32.

``gather`` (torchrun): each rank computes the loss of its slice of the batch, and DDP averages
the gradients of the equal slices, which is the gradient of the single-process batch mean (the
loss is a mean of per-sample terms against the memory). The memory update instead needs the
whole batch in its order (the v3-v5 updates compare the samples of a cluster with each other),
so ``gather`` concatenates every rank's teacher features, labels and indexes in rank order and
every rank applies the same update: the memories stay identical.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict

import torch
from tqdm import tqdm

from .errors import NonFiniteLossError
from .models.mean_teacher import update_teacher

log = logging.getLogger(__name__)
# added to the non-finite-loss error of a bf16 run on a CPU (the root README has the measurements)
BF16_CPU_HINT = ("; with bf16 on a CPU, inputs under 48 pixels wide also cause it: oneDNN's strided bf16 "
                 "convolutions are wrong on feature maps 1-2 columns wide (root README, 'bf16 on a CPU')")


def train_one_epoch(student, teacher, memory, loader, optimizer, epoch: int, iters: int,
                    device="cpu", ema_max_decay: float = 0.999, print_freq: int = 20,
                    writer=None, progress: bool | None = None, amp: str = "off", gather=None) -> dict:
    """Trains ``iters`` iterations; returns the epoch's mean loss terms and timings.

    Raises NonFiniteLossError (naming the epoch and iteration) when the loss is NaN or infinite.
    """
    student.train()
    teacher.train()
    sums: dict = defaultdict(float)
    data_time = batch_time = 0.0
    lr = optimizer.param_groups[0]["lr"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    device_type = torch.device(device).type
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" and device_type == "cuda" else None
    loader.new_epoch()
    end = time.perf_counter()
    bar = tqdm(range(iters), desc=f"epoch {epoch} train", disable=None if progress is None else not progress,
               leave=False, dynamic_ncols=True)
    for i in bar:
        images, targets, _, indexes = loader.next()
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        data_time += time.perf_counter() - end

        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            features = student(images)
            with torch.no_grad():
                teacher_features = teacher(images)
        features, teacher_features = features.float(), teacher_features.float()
        loss, parts = memory.loss(features, targets)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss is {loss.item()} at epoch {epoch}, iteration {i + 1}/{iters} (learning "
                f"rate {lr:g}): training diverged; lower --lr (or check the input images)"
                + (BF16_CPU_HINT if amp == "bf16" and device_type == "cpu" else ""))

        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()
        if gather is not None:
            teacher_features, targets, indexes = (gather(v) for v in (teacher_features, targets, indexes))
        memory.update(teacher_features, targets, indexes)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        update_teacher(student, teacher, epoch * iters + i, ema_max_decay)

        for k, v in parts.items():
            sums[k] += float(v)
        batch_time += time.perf_counter() - end
        end = time.perf_counter()
        step = epoch * iters + i
        if writer is not None:
            for k, v in parts.items():
                writer.add_scalar(f"train/{k}", float(v), step)
        bar.set_postfix(loss=f"{float(parts['loss']):.3f}")
        if print_freq and (i + 1) % print_freq == 0:
            terms = "  ".join(f"{k} {float(v):.3f} ({sums[k] / (i + 1):.3f})" for k, v in parts.items())
            log.info(f"Epoch: [{epoch}][{i + 1}/{iters}]  time {batch_time / (i + 1):.3f} s/it  "
                     f"data {data_time / (i + 1):.3f} s/it  {terms}")
    bar.close()
    stats = {k: v / max(iters, 1) for k, v in sums.items()}
    stats["seconds"] = batch_time
    return stats
