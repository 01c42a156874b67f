"""Ghost BatchNorm (--bn-slices), mixed precision, and torchrun training (2 processes, gloo, CPU)."""
import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import CCC_DIR, tiny_args
from torch import nn

from ccc.data import DistributedBatchSampler, RandomMultipleGallerySampler
from ccc.models.ghost_bn import set_ghost_bn


def test_ghost_bn_equals_separate_batch_norms_and_keeps_keys():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    plain = copy.deepcopy(bn)
    keys = list(bn.state_dict())
    set_ghost_bn(bn, 2)
    assert list(bn.state_dict()) == keys
    x = torch.randn(8, 3, 5, 5) * 3 - 1
    out = bn(x)
    for i, part in enumerate(x.chunk(2)):
        rm, rv = plain.running_mean.clone(), plain.running_var.clone()
        ref = F.batch_norm(part, rm, rv, plain.weight, plain.bias, True, plain.momentum, plain.eps)
        assert torch.allclose(out[4 * i:4 * i + 4], ref, atol=1e-5)
        if i == 0:
            first = rm, rv
    assert not torch.allclose(out, plain(x), atol=1e-3)  # whole-batch statistics differ
    assert torch.allclose(bn.running_mean, first[0], atol=1e-6)
    assert torch.allclose(bn.running_var, first[1], atol=1e-6)
    assert int(bn.num_batches_tracked) == 1
    bn.eval(), plain.eval()
    plain.load_state_dict(bn.state_dict())
    assert torch.allclose(bn(x), plain(x), atol=1e-6)


def test_bn_slices_default_and_the_deprecated_alias(train_script, capsys):
    assert train_script.parse_args([]).bn_slices == 2  # the authors' 2 GPUs
    args = train_script.parse_args(["--dp-splits", "4"])
    assert args.bn_slices == 4 and not hasattr(args, "dp_splits")
    assert "--dp-splits is deprecated" in capsys.readouterr().err
    for bad in (["--amp", "fp8"], ["--bn-slices", "0"]):
        with pytest.raises(SystemExit) as e:
            train_script.parse_args(bad)
        assert e.value.code == 2 and bad[0] in capsys.readouterr().err


def test_process_count_must_split_batch_and_bn_slices(train_script, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(SystemExit):
        train_script.parse_args(["--batch-size", "6"])
    assert "--batch-size 6 is not divisible by the 4 processes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_script.parse_args(["--bn-slices", "2"])
    assert "--bn-slices 2 is not a multiple of the 4 processes" in capsys.readouterr().err


def test_distributed_batch_sampler_slices_make_the_single_process_batches():
    items = [(f"f{i}", i // 3, i % 3, i) for i in range(30)]  # 10 ids x 3 cameras
    single = list(torch.utils.data.BatchSampler(RandomMultipleGallerySampler(items, 4, seed=5), 8, True))
    slices = [list(DistributedBatchSampler(RandomMultipleGallerySampler(items, 4, seed=5), 8, True, r, 2))
              for r in range(2)]
    assert len(single) == len(slices[0]) == len(slices[1]) > 0
    for b, r0, r1 in zip(single, *slices, strict=True):
        assert r0 + r1 == b and len(r0) == 4
    with pytest.raises(ValueError, match="not divisible"):
        DistributedBatchSampler(RandomMultipleGallerySampler(items, 4), 6, True, 0, 4)


@pytest.mark.slow
def test_amp_bf16_channels_last_tiny_run(train_script, tiny_root, tmp_path, capsys):
    logs = tmp_path / "amp"
    # 128 x 64: at the tiny runs' size oneDNN's bf16 convolutions give NaN on CPUs with AMX (root README,
    # 'bf16 on a CPU'); every strided convolution of ResNet then sees a map at least 4 columns wide
    extra = ("--num-epochs", "1", "--amp", "bf16", "--channels-last", "--height", "128", "--width", "64")
    rc = train_script.main(tiny_args(tiny_root, logs, *extra))
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((logs / "results.json").read_text())
    assert rec["config"]["amp"] == "bf16" and rec["config"]["channels_last"] is True
    assert all(math.isfinite(v) for v in rec["common"].values() if isinstance(v, float))


STEP_SCRIPT = """
import copy, gc, sys
import torch, torch.nn.functional as F
from torch import nn
from ccc.memory import create_memory
from ccc.utils import distributed as du

rank, world = du.init_from_env("cpu")
torch.manual_seed(0)
model = nn.Linear(6, 4)
ref = copy.deepcopy(model)
centroids = F.normalize(torch.randn(4, 4), dim=1)
def memory():
    m = create_memory("hd_camera", 4, 4, temp=0.05, momentum=0.1)
    m.initialise(centroids)
    return m
mine, single = memory(), memory()
x = torch.randn(8, 6)
y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
cam = torch.tensor([0, 1, 0, 0, 1, 2, 0, 1])
ddp = nn.parallel.DistributedDataParallel(model)
part = slice(rank * 4, rank * 4 + 4)
f = du.gather_with_grad(F.normalize(ddp(x[part]), dim=1))  # the whole batch, this rank's half with grad
yy, cc = du.gather_with_grad(y[part]), du.gather_with_grad(cam[part])
loss, _ = mine.loss(f, yy, cc, reweight=True)  # CIE couples the batch: the whole-batch loss
loss.backward()
mine.update(f.detach(), yy, cc)
g = F.normalize(ref(x), dim=1)
loss, _ = single.loss(g, y, cam, reweight=True)  # the single-process step
loss.backward()
single.update(g.detach(), y, cam)
grad = max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), ref.parameters()))
pairs = zip(mine.state_dict().values(), single.state_dict().values())
mem = max(float((a - b).abs().max()) for a, b in pairs)
print(f"rank {rank} gradient difference {grad:.2e} memory difference {mem:.2e}")
ok = grad < 1e-6 and mem < 1e-6
del ddp  # a DDP model left alive for interpreter exit can abort the process at teardown
gc.collect()  # ('terminate called without an active exception'): free it, then the group
torch.distributed.barrier()
du.cleanup()
sys.exit(0 if ok else 1)
"""


def torchrun(args, cwd, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(["nice", "-n", "15", *cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_ddp_step_equals_the_single_process_step(tmp_path):
    """The camera-weighted (CIE) loss couples the samples of a batch, so every rank computes the
    whole gathered batch's loss: all_gather's backward sums the two ranks' gradients of each half
    and DDP averages them, which gives the single-process gradient; the memory updated with the
    gathered batch equals the single-process memory on both ranks."""
    script = tmp_path / "step.py"
    script.write_text(STEP_SCRIPT)
    p = torchrun([str(script)], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("gradient difference") == 2


@pytest.mark.slow
def test_two_process_gloo_run_matches_single_process_and_resumes_in_one(tiny_root, tmp_path):
    """A real torchrun (2 processes, gloo) against the single-process run of the same tiny config
    (--bn-slices 2: one slice per process, two ghost slices in the single process). Equal: the
    initial evaluation and the first epoch's clustering (same seed and model; the features
    extracted in two shards and gathered in dataset order). Not equal: the training draws
    (process 1 draws the augmentations of its half from its own RNG stream) and the last digits
    of the sums, so the trained models differ like two seeds; with 8 test identities mAP moves by
    several points between such runs, so the metrics are required to be finite and within 20
    points of each other."""
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    common = ("--num-threads", "1")
    p = torchrun(["examples/train.py", *tiny_args(tiny_root, ddp, *common)], CCC_DIR)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run1 = [sys.executable, "examples/train.py", *tiny_args(tiny_root, single, *common)]
    p = subprocess.run(run1, cwd=CCC_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    d, s = (json.loads((o / "results.json").read_text()) for o in (ddp, single))
    assert d["history"][0]["clusters"] == s["history"][0]["clusters"]
    assert d["initial"]["mAP"] == pytest.approx(s["initial"]["mAP"], abs=1e-6)
    assert math.isfinite(d["common"]["mAP"]) and abs(d["common"]["mAP"] - s["common"]["mAP"]) < 20
    assert "Traceback" not in (ddp / "log.txt").read_text()

    # the distributed checkpoint resumes in a single process. --resume refuses a changed --num-epochs
    # (README, "Runs and resume"), so the copy records 3 epochs, as if the distributed run had been
    # stopped after the second of three
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    state = torch.load(ddp / "checkpoint.pth.tar", weights_only=True)
    assert state["args"]["num_epochs"] == 2
    state["args"]["num_epochs"] = 3
    torch.save(state, resumed / "from_ddp.pth.tar")
    run2 = [sys.executable, "examples/train.py",
            *tiny_args(tiny_root, resumed, *common, "--num-epochs", "3", "--resume",
                       str(resumed / "from_ddp.pth.tar"))]
    p = subprocess.run(run2, cwd=CCC_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads((resumed / "results.json").read_text())
    assert len(r["history"]) == 3 and r["history"][:2] == d["history"]
