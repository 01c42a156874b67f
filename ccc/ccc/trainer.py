"""One training epoch of 3C (``trainer.py``): the model, the cluster memory, CIE and the memory
update (``--cm-mode``).

Per iteration (``--iters`` of them; the sampler's stream restarts when it runs out):

    f = F.normalize(model(x))                 train mode (3C normalises the model's output again)
    loss = memory.loss(f, y, cam, reweight)   ClusterNCE, weighted by CIE with --loss-with-camera
    loss.backward()
    memory.update(f, y, cam)                  e.g. CHD (memory/hd_camera.py), before the step
    optimizer.step()

3C trains under ``nn.DataParallel`` on 2 GPUs, so BatchNorm normalises each half of the batch
separately; ``--bn-slices`` reproduces that with ghost BatchNorm (``models/ghost_bn.py``, set up
by the training script): the model's forward is unchanged here.

``gather`` (torchrun, DistributedDataParallel): each rank forwards its contiguous slice of the
global batch; ``gather`` concatenates the ranks' features (with gradient), targets and cameras in
rank order, i.e. the single-process batch. The loss couples the batch's samples (CIE weights
count the cameras of every cluster in the whole batch), so every rank computes the loss of the
whole global batch, and updates its memory with the whole batch in the same order: the memories
stay identical. all_gather's backward sums the W ranks' (identical) gradients into each rank's
part (W dL/df_r) and DDP averages the parameter gradients over W: the single-process gradient.

``amp`` "bf16" / "fp16": the forward under ``torch.autocast`` (fp16 with a GradScaler on CUDA);
the features are cast to fp32 before the normalisation, so memory, loss and update run in fp32.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .errors import NonFiniteLossError

log = logging.getLogger(__name__)
# added to the non-finite-loss error of a bf16 run on a CPU (the root README has the measurements)
BF16_CPU_HINT = ("; with bf16 on a CPU, inputs under 48 pixels wide also cause it: oneDNN's strided bf16 "
                 "convolutions are wrong on feature maps 1-2 columns wide (root README, 'bf16 on a CPU')")

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def train_one_epoch(model, memory, loader, optimizer, epoch: int, iters: int, device="cpu",
                    reweight: bool = False, print_freq: int = 20, writer=None,
                    progress: bool | None = None, amp: str = "off", channels_last: bool = False,
                    gather=None) -> dict:
    """Trains ``iters`` iterations; returns the epoch's mean loss terms, ``seconds`` (from the
    loader's start, its workers included) and ``images`` (what the forward saw, global batches).

    Raises NonFiniteLossError (naming the epoch and iteration) when the loss is NaN or infinite.
    """
    model.train()
    sums: dict = defaultdict(float)
    data_time = batch_time = 0.0
    lr = optimizer.param_groups[0]["lr"]
    device_type = torch.device(device).type
    dtype = AMP_DTYPES[amp]
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" and device_type == "cuda" else None
    images_seen = 0
    end = time.perf_counter()
    loader.new_epoch()
    bar = tqdm(range(iters), desc=f"epoch {epoch} train", disable=None if progress is None else not progress,
               leave=False, dynamic_ncols=True)
    for i in bar:
        images, targets, cameras, _ = loader.next()
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        cameras = cameras.to(device, non_blocking=True)
        data_time += time.perf_counter() - end

        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            out = model(images)
        features = F.normalize(out.float(), dim=1)
        if gather is not None:   # torchrun: the whole global batch, in single-process order
            features, targets, cameras = gather(features), gather(targets), gather(cameras)
        images_seen += len(targets)
        loss, parts = memory.loss(features, targets, cameras, reweight=reweight)
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
        memory.update(features.detach(), targets, cameras)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()

        for k, v in parts.items():
            sums[k] += float(v)
        batch_time += time.perf_counter() - end
        end = time.perf_counter()
        if writer is not None:
            for k, v in parts.items():
                writer.add_scalar(f"train/{k}", float(v), epoch * iters + i)
        bar.set_postfix(loss=f"{float(parts['loss']):.3f}")
        if print_freq and (i + 1) % print_freq == 0:
            terms = "  ".join(f"{k} {float(v):.3f} ({sums[k] / (i + 1):.3f})" for k, v in parts.items())
            log.info(f"Epoch: [{epoch}][{i + 1}/{iters}]  time {batch_time / (i + 1):.3f} s/it  "
                     f"data {data_time / (i + 1):.3f} s/it  {terms}")
    bar.close()
    stats = {k: v / max(iters, 1) for k, v in sums.items()}
    stats["seconds"], stats["images"] = batch_time, images_seen
    return stats
