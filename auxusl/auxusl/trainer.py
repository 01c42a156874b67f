"""One training epoch of AuxUSL (``usl_MTCluster_base.train``).

Per iteration (``num_iters`` of them, DTI; the identity-sampled stream restarts when it runs
out), student and teacher both in train mode on the same batch of clips:

    f_s, z_s = student(x);  f_t, z_t = teacher(x)       logits sliced to the #clusters
    L = (1 - w_ce) * L_id(z_s, y) + (1 - w_tri) * L_tri(f_s, y)
        + w_ce * L_softCE(z_s, z_t) + w_tri * L_softTri(f_s, f_t, y)
    step the optimizer; EMA of the teacher with t = epoch * num_iters + i

``multi_gpu`` False is the original's single-GPU path: the batch is forwarded in chunks of
``forward_batch`` tracklets, each chunk's losses computed on its own (batch-hard mining sees
one chunk), summed and divided by 4 (a literal 4 in the original). True is its DataParallel
path: losses on the whole batch (the paper's 4-GPU runs).

``gather`` (distributed runs): concatenates every rank's part of the batch, with gradient,
so each rank computes the losses of the whole global batch (the multi-GPU path). With
all_gather's backward summing the world's identical losses' gradients into each rank's part
(W x dL/dx_r) and DDP averaging parameter gradients over the W ranks, each parameter gets
(1/W) sum_r W dL/dx_r dx_r/dtheta = dL/dtheta: the single-process gradient, no extra scale.

``amp`` "bf16" / "fp16" runs the two forwards under ``torch.autocast`` (fp16 with a GradScaler on
CUDA); the outputs are cast to fp32 before the losses, so every loss is computed in fp32.
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


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float((logits.argmax(1) == targets).float().mean()) if len(targets) else 0.0


def train_one_epoch(
    student,
    teacher,
    loader,
    optimizer,
    criteria: dict,
    num_clusters: int,
    epoch: int,
    num_iters: int,
    device="cpu",
    ce_soft_weight: float = 0.5,
    tri_soft_weight: float = 0.8,
    alpha: float = 0.999,
    multi_gpu: bool = True,
    forward_batch: int = 16,
    print_period: int = 100,
    writer=None,
    progress=None,
    amp: str = "off",
    gather=None,
) -> dict:
    """criteria: {"id", "tri", "ce_soft", "tri_soft"} loss modules. Returns the mean loss terms,
    precision and seconds. NonFiniteLossError (epoch, iteration) when the loss is NaN or inf."""
    student.train()
    teacher.train()
    sums: dict = defaultdict(float)
    lr = optimizer.param_groups[0]["lr"]
    loader.new_epoch()
    optimizer.zero_grad()
    start = end = time.perf_counter()
    data_time = 0.0

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    device_type = torch.device(device).type
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" and device_type == "cuda" else None

    def forward(x, y):
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            f_s, z_s = student(x)
            f_t, z_t = teacher(x)
        f_s, z_s, f_t, z_t = f_s.float(), z_s.float(), f_t.float(), z_t.float()
        if gather is not None:  # distributed: every rank computes the whole-batch losses
            f_s, z_s, f_t, z_t, y = (gather(v) for v in (f_s, z_s, f_t, z_t, y))
        z_s = z_s[:, :num_clusters]
        z_t = z_t[:, :num_clusters]
        parts = {
            "loss_ce": criteria["id"](z_s, y),
            "loss_tri": criteria["tri"](f_s, y),
            "loss_ce_soft": criteria["ce_soft"](z_s, z_t),
            "loss_tri_soft": criteria["tri_soft"](f_s, f_t, y),
        }
        loss = (
            parts["loss_ce"] * (1 - ce_soft_weight)
            + parts["loss_tri"] * (1 - tri_soft_weight)
            + parts["loss_ce_soft"] * ce_soft_weight
            + parts["loss_tri_soft"] * tri_soft_weight
        )
        return loss, parts, accuracy(z_t.detach(), y)

    bar = tqdm(
        range(num_iters),
        desc=f"epoch {epoch} train",
        disable=None if progress is None else not progress,
        leave=False,
        dynamic_ncols=True,
    )
    for i in bar:
        clips, targets, _, _ = loader.next()
        clips, targets = clips.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        data_time += time.perf_counter() - end
        if multi_gpu:
            loss, parts, prec = forward(clips, targets)
        else:
            loss = torch.zeros((), device=device)
            parts, precs = defaultdict(float), []
            for s in range(0, len(targets), forward_batch):
                chunk_loss, chunk_parts, chunk_prec = forward(
                    clips[s : s + forward_batch], targets[s : s + forward_batch]
                )
                loss = loss + chunk_loss
                for k, v in chunk_parts.items():
                    parts[k] += float(v) / 4
                precs.append(chunk_prec)
            loss = loss / 4
            prec = sum(precs) / max(len(precs), 1)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss is {loss.item()} at epoch {epoch}, iteration {i + 1}/{num_iters} "
                f"(learning rate {lr:g}): "
                "training diverged; lower OPTIM.LR (or check the input frames)"
                + (BF16_CPU_HINT if amp == "bf16" and device_type == "cpu" else "")
            )
        optimizer.zero_grad()
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        update_teacher(student, teacher, epoch * num_iters + i, alpha)

        values = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in parts.items()}
        values.update(loss=float(loss.detach()), prec=prec)
        for k, v in values.items():
            sums[k] += v
        step = epoch * num_iters + i
        if writer is not None:
            for k, v in values.items():
                writer.add_scalar(f"train/{k}", v, step)
        bar.set_postfix(loss=f"{values['loss']:.3f}")
        if print_period and ((i + 1) % print_period == 0 or i + 1 == num_iters):
            elapsed = time.perf_counter() - start
            terms = "  ".join(
                f"{k} {values[k]:.3f} ({sums[k] / (i + 1):.3f})"
                for k in ("loss_ce", "loss_tri", "loss_ce_soft", "loss_tri_soft")
            )
            log.info(
                f"Epoch: [{epoch + 1}][{i + 1}/{num_iters}]  time {elapsed / (i + 1):.3f} s/it  "
                f"data {data_time / (i + 1):.3f} s/it  {terms}  prec {values['prec']:.2%}"
            )
        end = time.perf_counter()
    bar.close()
    stats = {k: v / max(num_iters, 1) for k, v in sums.items()}
    stats["seconds"] = time.perf_counter() - start
    return stats
