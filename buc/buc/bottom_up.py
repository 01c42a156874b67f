"""One BUC step = train on the current clusters, then merge (the original's ``Bottom_up``).

Schedule (spec B6): step 0 trains ``initial_epochs`` (20) epochs at lr 0.1, divided by 10 from
epoch ``lr_step_size`` (16) on; later steps train ``later_epochs`` epochs (2 for images, 5 for
video) at a constant 0.01. The backbone learns at 0.1 x the rate of the new layers; SGD with
Nesterov momentum 0.9 and weight decay 5e-4 on every parameter; a fresh optimiser each step,
while the weights carry over. Video: 16 frames drawn per tracklet, conv1-layer2 frozen.
``max_iters`` (``--max_iters``; a rehearsal's 20) caps the batches of each epoch.

Only the training frames and the pseudo-labels enter this class; the true identities of the
training set never do (they stay in the dataset records, for diagnostics outside).

BatchNorm statistics: ``bn_slices`` K > 1 converts the BatchNorms to ghost BatchNorm (K slices of
the batch, as the original's DataParallel on K GPUs; models/ghost_bn.py), unless the model runs
in a real nn.DataParallel (several visible GPUs, one process), whose replicas do it themselves.

Distributed (torchrun, one process included; ``utils/distributed.py``): the model is wrapped in
DistributedDataParallel and each rank uses K / world ghost slices of its part of the batch; the
training batches come from ``DistributedBatchSampler`` (each rank its contiguous slice of the
single-process batch); the training features for the merge are extracted in shards, gathered
in dataset order, merged on rank 0 and the new labels broadcast; BN buffers are broadcast from
rank 0 after each epoch.
Evaluation (``evaluate``) is meant for rank 0 alone and uses the unwrapped model.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from .evaluators import evaluate_all, extract_features
from .losses import ExLoss
from .merge import MergeResult, merge_clusters
from .models.ghost_bn import set_ghost_bn
from .trainers import Trainer
from .utils import distributed as du
from .utils.data import Preprocessor, collate, sample_frames
from .utils.data import transforms as T
from .utils.data.sampler import DistributedBatchSampler


class BottomUp:
    def __init__(self, model, train_samples, images_dir: str, *, is_video: bool, batch_size: int = 16,
                 height: int = 256, width: int = 128, workers: int = 6, embedding_size: int = 2048,
                 frames_per_video: int | None = None, max_frames: int = 900,
                 eval_batch_size: int | None = None, initial_epochs: int = 20,
                 later_epochs: int | None = None, lr: float = 0.1, later_lr: float = 0.01,
                 lr_step_size: int = 16, momentum: float = 0.9, weight_decay: float = 5e-4,
                 t: float = 10.0, device="cpu", origin_of=None, progress: bool = True,
                 print_freq: int | None = None, merge_block_rows: int = 4096, bn_slices: int = 1,
                 amp: str = "off", channels_last: bool = False, cache_images: bool = False,
                 max_iters: int | None = None):
        self.device = torch.device(device)
        self.module = model.to(self.device)
        if channels_last:
            self.module.to(memory_format=torch.channels_last)
        self.rank, self.world = du.rank(), du.world_size()
        self.amp = amp
        if du.is_dist():   # torchrun, one process included
            if bn_slices % self.world:
                raise ValueError(f"--bn-slices {bn_slices} is not a multiple of the {self.world} processes "
                                 f"(each normalises bn_slices / world slices of its part); pass "
                                 f"--bn-slices {self.world} or another multiple of {self.world}")
            if bn_slices // self.world > 1:
                set_ghost_bn(self.module, bn_slices // self.world)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
            self.eval_model = self.module
        elif torch.cuda.device_count() > 1 and self.device.type == "cuda":
            # the original wrapped the model in DataParallel (1 GPU for images, 2 for video)
            self.model = self.eval_model = nn.DataParallel(self.module)
        else:
            if bn_slices > 1:   # one device emulates the original's replicas
                set_ghost_bn(self.module, bn_slices)
            self.model = self.eval_model = self.module
        self.train_samples = [tuple(s) for s in train_samples]
        self.images_dir = images_dir
        self.is_video = is_video
        self.batch_size = batch_size
        self.height, self.width = height, width
        self.workers = workers
        self.embedding_size = embedding_size
        self.frames_per_video = frames_per_video or (16 if is_video else 1)
        self.max_frames = max_frames
        self.eval_batch_size = eval_batch_size or (1 if is_video else 64)
        self.max_iters = max_iters   # training batches per epoch, at most (None: all)
        self.initial_epochs = initial_epochs
        self.later_epochs = later_epochs if later_epochs is not None else (5 if is_video else 2)
        self.lr, self.later_lr, self.lr_step_size = lr, later_lr, lr_step_size
        self.momentum, self.weight_decay = momentum, weight_decay
        self.t = t
        self.origin_of = origin_of
        self.image_cache = {} if cache_images else None   # decoded images, path -> PIL image
        self.progress = progress
        self.print_freq = print_freq
        self.merge_block_rows = merge_block_rows
        if self.world > 1 and batch_size % self.world:
            raise ValueError(f"--batch-size {batch_size} is not divisible by the {self.world} processes "
                             f"(the global batch is split evenly); use a multiple of {self.world}")
        if len(self.train_samples) < batch_size:
            raise ValueError(f"{len(self.train_samples)} training samples are fewer than one batch "
                             f"({batch_size}); with drop_last no iteration would run")
        self.criterion = ExLoss(embedding_size, len(self.train_samples), t=t).to(self.device)

    # ------------------------------------------------------------------------ data
    def get_dataloader(self, samples, labels=None, training: bool = False) -> DataLoader:
        if training:
            transform = T.train_transform(self.height, self.width)
            batch_size = self.batch_size
        else:
            transform = T.test_transform(self.height, self.width)
            batch_size = self.eval_batch_size
        dataset = Preprocessor(samples, root=self.images_dir, transform=transform, labels=labels,
                               num_samples=self.frames_per_video, is_training=training,
                               max_frames=self.max_frames, origin_of=self.origin_of, cache=self.image_cache)
        pin = self.device.type == "cuda"
        if training and self.world > 1:  # each rank its slice of the single-process batch
            batches = DistributedBatchSampler(RandomSampler(dataset), batch_size, True, self.rank, self.world)
            return DataLoader(dataset, batch_sampler=batches, num_workers=self.workers, pin_memory=pin)
        return DataLoader(dataset, batch_size=batch_size, num_workers=self.workers, shuffle=training,
                          pin_memory=pin, drop_last=training, collate_fn=None if training else collate)

    # ------------------------------------------------------------------------ schedule
    def epochs_for(self, step: int) -> int:
        return self.initial_epochs if step == 0 else self.later_epochs

    def lr_for(self, step: int, epoch: int) -> float:
        if step == 0:
            return self.lr / (10 ** (epoch // self.lr_step_size))
        return self.later_lr

    def make_optimizer(self, step: int) -> torch.optim.Optimizer:
        base = self.module.CNN.base
        base_ids = {id(p) for p in base.parameters()}
        base_params = [p for p in base.parameters() if p.requires_grad]
        new_params = [p for p in self.module.parameters() if id(p) not in base_ids]
        groups = [{"params": base_params, "lr_mult": 0.1}, {"params": new_params, "lr_mult": 1.0}]
        return torch.optim.SGD(groups, lr=self.lr_for(step, 0), momentum=self.momentum,
                               weight_decay=self.weight_decay, nesterov=True, fused=True)

    def adjust_lr(self, optimizer, step: int, epoch: int) -> float:
        lr = self.lr_for(step, epoch)
        for g in optimizer.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        return lr

    # ------------------------------------------------------------------------ train
    def train(self, labels, step: int, start_epoch: int = 0, optimizer_state=None, on_epoch_end=None,
              writer=None, stop_after_epochs: int | None = None) -> int:
        """Trains step ``step`` from ``start_epoch``; ``on_epoch_end(step, epoch, optimizer,
        stats)`` is called after each epoch (checkpointing). Returns the epochs run."""
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(self.train_samples):
            raise ValueError(f"{len(labels)} labels for {len(self.train_samples)} training samples")
        if labels.max() >= self.criterion.num_classes:
            raise ValueError("labels exceed the memory size; call get_new_train_data after merging")
        loader = self.get_dataloader(self.train_samples, labels, training=True)
        optimizer = self.make_optimizer(step)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        trainer = Trainer(self.model, self.criterion, self.device, amp=self.amp)
        per_epoch = len(loader) if self.max_iters is None else min(len(loader), self.max_iters)
        print_freq = self.print_freq or max(5, per_epoch // 30 * 10)
        ran = 0
        for epoch in range(start_epoch, self.epochs_for(step)):
            if stop_after_epochs is not None and ran >= stop_after_epochs:
                break
            lr = self.adjust_lr(optimizer, step, epoch)
            t0 = time.time()
            stats = trainer.train(epoch, loader, optimizer, step=step, print_freq=print_freq,
                                  writer=writer, global_step=self._global_iter(step, epoch, per_epoch),
                                  progress=self.progress, max_iters=self.max_iters)
            stats["lr"], stats["seconds"] = lr, time.time() - t0
            du.broadcast_buffers(self.module)   # rank 0's BN running statistics on every rank
            ran += 1
            if on_epoch_end is not None:
                on_epoch_end(step, epoch, optimizer, stats)
        return ran

    def _global_iter(self, step: int, epoch: int, per_epoch: int) -> int:
        done = sum(self.epochs_for(s) for s in range(step)) + epoch
        return done * per_epoch

    # ------------------------------------------------------------------------ features
    def frames(self, samples) -> int:
        """Images (video: frames, at most ``max_frames`` per tracklet) that ``extract`` runs
        through the network for these samples."""
        return sum(min(len(s), self.max_frames) for s in samples)

    def extract(self, samples, desc: str = "extract", sharded: bool = False) -> np.ndarray:
        """Features of samples, in order. sharded (every rank calls it): each rank extracts its
        contiguous block, the blocks are gathered in order."""
        if sharded and self.world > 1:
            part = [samples[i] for i in du.shard(len(samples))]
            return du.gather_in_order(torch.from_numpy(self.extract(part, desc))).numpy()
        loader = self.get_dataloader(samples, training=False)
        return extract_features(self.eval_model, loader, self.device, desc=desc, progress=self.progress)

    def evaluate(self, query, gallery, metric=None, labels=None, cmc_configs=("market1501",), seed: int = 0):
        """Open-ReID evaluation; ``metric`` (a DistanceMetric) is fitted on the training features
        with the current pseudo-labels first."""
        if metric is not None and metric.algorithm != "euclidean":
            try:
                metric.train(self.extract(self.train_samples, "extract train (metric)"), labels)
            except ValueError as exc:   # e.g. KISSME at step 0: every cluster is a single sample
                print(f"metric '{metric.algorithm}' cannot be fitted on these clusters ({exc}); "
                      "ranking with the Euclidean distance at this step")
                metric = None
        qf = self.extract([r[0] for r in query], "extract query")
        gf = self.extract([r[0] for r in gallery], "extract gallery")
        return evaluate_all(qf, gf, query, gallery, cmc_configs=cmc_configs, metric=metric, seed=seed)

    def skip_evaluation(self, query, gallery, metric=None) -> None:
        """Takes the random draws ``evaluate`` would take, and does nothing else (``--eval-every``):
        each evaluation DataLoader draws its base seed from torch's generator when its iterator
        is made, and with ``workers`` 0 a tracklet longer than ``max_frames`` draws its frame
        subset from python's ``random``. So a run that skips an evaluation trains exactly as the
        run that makes it (tested). A learned ``metric`` draws what its fit draws in addition;
        that is not emulated (the equality is for the default Euclidean ranking)."""
        lists = [[r[0] for r in query], [r[0] for r in gallery]]
        if metric is not None and metric.algorithm != "euclidean":
            lists.insert(0, self.train_samples)
        for samples in lists:
            dataset = self.get_dataloader(samples, training=False).dataset
            iter(DataLoader(dataset, batch_size=1, num_workers=0))   # the base-seed draw
            if self.workers == 0:
                for frames in samples:
                    if len(frames) > self.max_frames:
                        sample_frames(frames, 1, False, self.max_frames)

    # ------------------------------------------------------------------------ merge
    def get_new_train_data(self, labels, nums_to_merge: int, size_penalty: float,
                           features=None) -> MergeResult:
        """Extracts the training features, merges ``nums_to_merge`` cluster pairs and creates a
        new memory with one zero slot per remaining cluster (the authors' fix). Distributed:
        every rank calls it; rank 0 merges and its result (or exception) reaches every rank."""
        if features is None:
            features = self.extract(self.train_samples, "extract train", sharded=True)
        result = du.run_on_rank0(lambda: merge_clusters(features, labels, nums_to_merge, size_penalty,
                                                        block_rows=self.merge_block_rows, device=self.device))
        print(f"num of label before merge:  {result.num_before}  after_merge:  {result.num_after}  "
              f"sub:  {result.num_before - result.num_after}")
        self.criterion = ExLoss(self.embedding_size, result.num_after, t=self.t).to(self.device)
        return result

    # ------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"model": self.module.state_dict(), "memory": self.criterion.V.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        memory = state["memory"]
        self.criterion = ExLoss(self.embedding_size, memory.shape[0], t=self.t).to(self.device)
        self.criterion.V.copy_(memory.to(self.device))
