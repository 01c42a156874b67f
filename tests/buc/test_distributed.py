"""Ghost BatchNorm, mixed precision, and torchrun training (2 processes, gloo, on the CPU)."""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import BUC, tiny_argv, untimed
from torch import nn
from train import main, parse_args, resolved_config

from buc.models.ghost_bn import set_ghost_bn
from buc.utils.serialization import load_checkpoint


def test_ghost_bn_equals_separate_batch_norms_and_keeps_keys():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    plain = copy.deepcopy(bn)
    keys = list(bn.state_dict())
    set_ghost_bn(bn, 4)
    assert list(bn.state_dict()) == keys
    x = torch.randn(16, 3, 5, 5)
    out = bn(x)
    for i, part in enumerate(x.chunk(4)):
        rm, rv = plain.running_mean.clone(), plain.running_var.clone()
        ref = F.batch_norm(part, rm, rv, plain.weight, plain.bias, True, plain.momentum, plain.eps)
        assert torch.allclose(out[4 * i:4 * i + 4], ref, atol=1e-6)
        if i == 0:   # the running statistics come from slice 0 (DataParallel's first replica)
            assert torch.allclose(bn.running_mean, rm, atol=1e-6)
            assert torch.allclose(bn.running_var, rv, atol=1e-6)
    assert int(bn.num_batches_tracked) == 1
    bn.eval(), plain.eval()
    plain.load_state_dict(bn.state_dict())
    assert torch.allclose(bn(x), plain(x), atol=1e-6)   # eval mode = plain BatchNorm


def test_ghost_bn_keeps_the_frames_of_a_tracklet_in_one_slice():
    """Video: the backbone's BatchNorm2d sees B x T frames (T consecutive per tracklet), the
    embedding BatchNorm1d one row per tracklet; both are cut into the same 2 tracklet slices."""
    class Clips(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn2d, self.bn1d = nn.BatchNorm2d(2), nn.BatchNorm1d(2)

        def forward(self, x):   # (B, T, 2, 1, 1)
            b, t = x.shape[:2]
            frames = self.bn2d(x.reshape(b * t, 2, 1, 1))
            return frames, self.bn1d(frames.view(b, t, 2).mean(dim=1))

    torch.manual_seed(1)
    m = set_ghost_bn(Clips(), 2)
    x = torch.randn(6, 4, 2, 1, 1)   # 6 tracklets of 4 frames -> slices of 3 tracklets
    frames, pooled = m(x)
    ref = [F.batch_norm(c.reshape(-1, 2, 1, 1), None, None, training=True) for c in x.chunk(2)]
    assert torch.allclose(frames, torch.cat(ref), atol=1e-6)
    ref1 = [F.batch_norm(r.view(3, 4, 2).mean(dim=1), None, None, training=True) for r in ref]
    assert torch.allclose(pooled, torch.cat(ref1), atol=1e-6)


def test_bn_slices_default_is_the_authors_gpu_count(tiny_root, tmp_path):
    assert parse_args(["-d", "market1501"]).bn_slices is None   # resolved when the dataset is known
    assert parse_args(["--smoke", "-d", "dukevideo"]).bn_slices == 4   # the video smoke preset
    # the smoke presets decode each image once (--cache_images); the paper's settings do not
    assert parse_args(["--smoke", "-d", "dukevideo"]).cache_images is True
    assert parse_args(["--smoke", "-d", "market1501"]).cache_images is True
    assert parse_args(["-d", "market1501"]).cache_images is False
    # the resolved value, before any data is read
    for dataset, slices in (("market1501", 1), ("duke", 1), ("mars", 2), ("dukevideo", 2)):
        assert resolved_config(vars(parse_args(["-d", dataset])))["bn_slices"] == slices
    assert resolved_config(vars(parse_args(["-d", "dukevideo"])), world=4)["bn_slices"] == 4
    with pytest.raises(SystemExit):
        parse_args(["--bn-slices", "0"])


@pytest.mark.slow
def test_bn_slices_default_is_written_to_the_run_files(tiny_root, tmp_path):
    args = tiny_argv(tiny_root, tmp_path, "--steps", "1", "--initial_steps", "1")
    assert main(args) == 0
    assert json.loads((tmp_path / "args.json").read_text())["bn_slices"] == 1   # images: 1 GPU
    assert json.loads((tmp_path / "results.json").read_text())["config"]["bn_slices"] == 1


@pytest.mark.slow
def test_amp_bf16_tiny_run_has_finite_metrics(tiny_root, tmp_path):
    # 128 x 64: at the tiny runs' size oneDNN's bf16 convolutions give NaN on CPUs with AMX (root README,
    # 'bf16 on a CPU'); every strided convolution of ResNet then sees a map at least 4 columns wide
    args = tiny_argv(tiny_root, tmp_path, "--steps", "2", "--initial_steps", "1", "--amp", "bf16",
                     "--channels-last", "--bn-slices", "2", "--height", "128", "--width", "64")
    assert main(args) == 0
    rec = json.loads((tmp_path / "results.json").read_text())
    assert rec["config"]["amp"] == "bf16" and rec["config"]["channels_last"]
    assert all(math.isfinite(h["common"]["mAP"]) for h in rec["history"])


def test_bad_amp_value_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--amp", "fp8"])
    assert exc.value.code == 2 and "--amp" in capsys.readouterr().err


def test_distributed_batch_sampler_slices_make_the_single_process_batches():
    from torch.utils.data import BatchSampler, RandomSampler

    from buc.utils.data.sampler import DistributedBatchSampler

    data = list(range(30))
    torch.manual_seed(5)
    single = list(BatchSampler(RandomSampler(data), 8, drop_last=True))   # DataLoader(shuffle=True)
    slices = []
    for rank in range(2):
        torch.manual_seed(5)   # a real run broadcasts rank 0's order; here every "rank" draws it
        slices.append(list(DistributedBatchSampler(RandomSampler(data), 8, True, rank, 2)))
    assert len(single) == len(slices[0]) == len(slices[1]) == 3
    for b, r0, r1 in zip(single, *slices):
        assert r0 + r1 == b and len(r0) == 4
    with pytest.raises(ValueError, match="--batch-size 6 is not divisible"):
        DistributedBatchSampler(RandomSampler(data), 6, True, 0, 4)


GRAD_SCRIPT = """
import copy, gc, sys
import torch
from torch import nn
from buc.losses import ExLoss
from buc.utils import distributed as du

rank, world = du.init_from_env("cpu")
torch.manual_seed(0)
model = nn.Linear(6, 4)
ref = copy.deepcopy(model)
crit, ref_crit = ExLoss(4, 5, t=10.0), ExLoss(4, 5, t=10.0)
crit.V.copy_(torch.nn.functional.normalize(torch.randn(5, 4), dim=1))
ref_crit.V.copy_(crit.V)
x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 3, 4, 0, 1, 1])
ddp = nn.parallel.DistributedDataParallel(model)
emb = ddp(x.chunk(world)[rank])                      # this rank's half of the batch
loss, _ = crit(emb, y.chunk(world)[rank])
loss.backward()
crit.update_memory(du.gather_equal(emb.detach()), du.gather_equal(y.chunk(world)[rank]))
ref_emb = ref(x)                                     # the single-process whole batch
ref_loss, _ = ref_crit(ref_emb, y)
ref_loss.backward()
ref_crit.update_memory(ref_emb.detach(), y)
err = max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), ref.parameters()))
mem = float((crit.V - ref_crit.V).abs().max())
print(f"rank {rank} max gradient difference {err:.2e}, memory difference {mem:.2e}")
ok = err < 1e-6 and mem < 1e-6
del ddp  # a DDP model left alive for interpreter exit can abort the process at teardown
gc.collect()  # ('terminate called without an active exception'): free it, then the group
torch.distributed.barrier()
du.cleanup()
sys.exit(0 if ok else 1)
"""


def torchrun(args, cwd, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(["nice", "-n", "15", *cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_ddp_exloss_gradient_and_memory_equal_the_single_process(tmp_path):
    """ExLoss is a per-sample mean: DDP's average of the ranks' gradients is the whole-batch
    gradient; the memory, updated with the gathered batch in rank order, is the single one's."""
    script = tmp_path / "grad.py"
    script.write_text(GRAD_SCRIPT)
    p = torchrun([str(script)], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("max gradient difference") == 2


@pytest.mark.slow
def test_two_process_gloo_run_matches_single_process_and_resumes_in_one(tiny_root, tmp_path):
    """A real torchrun (2 processes, gloo) against the single-process run of the same tiny
    config (--bn-slices 2: one ghost slice per process). Equal: the initial evaluation (same seed,
    same model, rank 0 evaluates) and the cluster counts (the merge schedule); the training
    batches are the same (rank 0's order, split in two). Not equal: each process draws dropout
    masks and augmentations for its own half of the batch, so rank 0's RNG stream (and so the
    later passes' orders) and the trained models differ like two seeds; with 6 test identities
    the mAP moves by several points between such runs, so the final metrics are only required to
    be finite and within 30 points of each other."""
    extra = ("--threads", "1", "--bn-slices", "2")
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    # no --bn-slices: the image default (1, the authors' GPU) becomes 2, one slice per process
    p = torchrun(["examples/train.py", *tiny_argv(tiny_root, ddp, "--threads", "1")], BUC)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run1 = ["nice", "-n", "15", sys.executable, "examples/train.py", *tiny_argv(tiny_root, single, *extra)]
    p = subprocess.run(run1, cwd=BUC, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    d, s = (json.loads((o / "results.json").read_text()) for o in (ddp, single))
    assert d["config"]["bn_slices"] == s["config"]["bn_slices"] == 2
    print("clusters", [h["clusters"] for h in d["history"]], [h["clusters"] for h in s["history"]])
    print("initial mAP", d["initial"]["mAP"], s["initial"]["mAP"], "best", d["common"]["mAP"],
          s["common"]["mAP"], "last", d["last"]["mAP"], s["last"]["mAP"])
    assert [h["clusters"] for h in d["history"]] == [h["clusters"] for h in s["history"]]
    assert d["initial"]["mAP"] == pytest.approx(s["initial"]["mAP"], abs=1e-6)
    assert all(math.isfinite(r[k]["mAP"]) for r in (d, s) for k in ("common", "last"))
    assert abs(d["common"]["mAP"] - s["common"]["mAP"]) < 30
    assert "Traceback" not in (ddp / "log.txt").read_text()

    # the distributed checkpoint (rank 0's) resumes in a single process
    mid = tmp_path / "mid"
    p = torchrun(["examples/train.py", *tiny_argv(tiny_root, mid, *extra, "--stop_after_steps", "2")], BUC)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert load_checkpoint(mid / "checkpoint.pth.tar")["step"] == 2
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(mid / "checkpoint.pth.tar", resumed / "checkpoint.pth.tar")
    assert main(tiny_argv(tiny_root, resumed, *extra, "--resume")) == 0
    r = json.loads((resumed / "results.json").read_text())
    assert [h["clusters"] for h in r["history"]] == [h["clusters"] for h in s["history"]]
    assert untimed(r["history"][:2]) == untimed(d["history"][:2]) and r["initial"] == d["initial"]
    assert all(math.isfinite(h["common"]["mAP"]) for h in r["history"])
    assert "resumed from step 2, epoch 0" in (resumed / "log.txt").read_text()
