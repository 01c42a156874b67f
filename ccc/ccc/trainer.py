"""One training epoch of 3C (``trainer.py``): the model, the cluster memory, CIE and the memory
update (``--cm-mode``).

Per iteration (``--iters`` of them; the sampler's stream restarts when it runs out):

    f = F.normalize(model(x))                 train mode (3C normalises the model's output again)
    loss = memory.loss(f, y, cam, reweight)   ClusterNCE, weighted by CIE with --loss-with-camera
    loss.backward()
    memory.update(f, y, cam)                  e.g. CHD (memory/hd_camera.py), before the step
    optimizer.step()

3C trains under ``nn.DataParallel`` on 2 GPUs, so BatchNorm normalises each half of the batch
(128 images = 8 pseudo-ids x 16) separately, and its running statistics follow the first half
(the replica on the first GPU shares the module's buffers). ``dp_splits = G`` [added] reproduces
that on one device: the batch is cut into G consecutive chunks as DataParallel scatters it, each
chunk goes through the model on its own, and the BN running statistics keep the values the
first chunk left. dp_splits = 1 is plain single-device training.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .errors import NonFiniteLossError

log = logging.getLogger(__name__)


def bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    return [b for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for b in m.buffers()]


def forward_like_data_parallel(model: nn.Module, images: torch.Tensor, splits: int = 1) -> torch.Tensor:
    """model(images) as ``nn.DataParallel`` over ``splits`` devices computes it (see module doc)."""
    if splits <= 1 or images.shape[0] < 2:
        return model(images)
    chunks = images.chunk(splits)
    outputs = [model(chunks[0])]
    if len(chunks) > 1:
        buffers = bn_buffers(model)
        saved = [b.detach().clone() for b in buffers]
        outputs += [model(c) for c in chunks[1:]]
        with torch.no_grad():
            for b, s in zip(buffers, saved):
                b.copy_(s)
    return torch.cat(outputs)


def train_one_epoch(model, memory, loader, optimizer, epoch: int, iters: int, device="cpu",
                    reweight: bool = False, dp_splits: int = 1, print_freq: int = 20, writer=None,
                    progress: bool | None = None) -> dict:
    """Trains ``iters`` iterations; returns the epoch's mean loss and timings.

    Raises NonFiniteLossError (naming the epoch and iteration) when the loss is NaN or infinite.
    """
    model.train()
    sums: dict = defaultdict(float)
    data_time = batch_time = 0.0
    lr = optimizer.param_groups[0]["lr"]
    loader.new_epoch()
    end = time.perf_counter()
    bar = tqdm(range(iters), desc=f"epoch {epoch} train", disable=None if progress is None else not progress,
               leave=False, dynamic_ncols=True)
    for i in bar:
        images, targets, cameras, _ = loader.next()
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        cameras = cameras.to(device, non_blocking=True)
        data_time += time.perf_counter() - end

        features = F.normalize(forward_like_data_parallel(model, images, dp_splits), dim=1)
        loss, parts = memory.loss(features, targets, cameras, reweight=reweight)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss is {loss.item()} at epoch {epoch}, iteration {i + 1}/{iters} (learning "
                f"rate {lr:g}): training diverged; lower --lr (or check the input images)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        memory.update(features.detach(), targets, cameras)
        optimizer.step()

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
    stats["seconds"] = batch_time
    return stats
