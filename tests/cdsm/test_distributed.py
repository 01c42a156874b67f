"""Ghost BatchNorm, mixed precision and torchrun training (2 processes, gloo, on the CPU)."""
import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import CDSM_DIR, tiny_args
from torch import nn

from cdsm import engine, models
from cdsm.data.sampler import DistributedBatchSampler, RandomMultipleGallerySampler
from cdsm.errors import CDSMError
from cdsm.models.ghost_bn import set_ghost_bn


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
    x = torch.randn(16, 3, 5, 5) * 2 + 1
    out = bn(x)
    for i, part in enumerate(x.chunk(4)):
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


def test_ghost_bn_model_equals_the_model_run_per_slice_as_data_parallel():
    """The CDSM network (BN2d backbone, BN1d neck) with 2 ghost slices: the output of each half
    equals a plain copy run on that half alone (a DataParallel replica), the running statistics
    equal those the first replica leaves."""
    torch.manual_seed(1)
    net = models.create("resnet18", pretrained="none", pooling_type="gem").train()
    replicas = [copy.deepcopy(net) for _ in range(2)]
    set_ghost_bn(net, 2)
    x = torch.randn(8, 3, 32, 16)
    out = net(x)
    ref = torch.cat([r(c) for r, c in zip(replicas, x.chunk(2), strict=True)])
    assert torch.allclose(out, ref, atol=1e-4)
    for (k, a), b in zip(net.state_dict().items(), replicas[0].state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k


def test_ghost_bn_uses_fewer_slices_for_a_tiny_batch():
    bn = set_ghost_bn(nn.BatchNorm1d(2), 4)
    x = torch.randn(5, 2)  # 4 slices would leave single samples: 2 slices (3 + 2)
    ref = torch.cat([F.batch_norm(c, None, None, training=True) for c in x.chunk(2)])
    assert torch.allclose(bn(x), ref, atol=1e-5)


def test_distributed_batch_sampler_slices_make_the_single_process_batches():
    items = [(f"f{i}", i // 3, i % 3, i) for i in range(30)]  # 10 ids x 3 cameras
    single = list(torch.utils.data.BatchSampler(RandomMultipleGallerySampler(items, 4, seed=5), 8, True))
    slices = [list(DistributedBatchSampler(RandomMultipleGallerySampler(items, 4, seed=5), 8, True, r, 2))
              for r in range(2)]
    assert len(single) == len(slices[0]) == len(slices[1]) == 5
    for b, r0, r1 in zip(single, *slices, strict=True):
        assert r0 + r1 == b and len(r0) == 4
    with pytest.raises(ValueError, match="split evenly"):
        DistributedBatchSampler(RandomMultipleGallerySampler(items, 4), 6, True, 0, 4)


def test_process_count_must_split_batch_and_bn_slices():
    with pytest.raises(CDSMError, match="--batch-size 6 .* 4 processes"):
        engine.check_world(batch_size=6, bn_slices=4, world=4)
    with pytest.raises(CDSMError, match="--bn-slices 2 is not a multiple"):
        engine.check_world(batch_size=64, bn_slices=2, world=4)
    engine.check_world(batch_size=64, bn_slices=4, world=4)


def test_bad_amp_and_bn_slices_are_refused(train_script, capsys):
    for bad in (["--amp", "fp8"], ["--bn-slices", "0"]):
        with pytest.raises(SystemExit) as e:
            train_script.parse_args(bad)
        assert e.value.code == 2 and bad[0] in capsys.readouterr().err


@pytest.mark.slow  # trains a network
def test_amp_bf16_channels_last_tiny_run(train_script, tiny_root, tmp_path, capsys):
    logs = tmp_path / "amp"
    # 128 x 64: at the tiny runs' size oneDNN's bf16 convolutions give NaN on CPUs with AMX (root README,
    # 'bf16 on a CPU'); every strided convolution of ResNet then sees a map at least 4 columns wide
    extra = ("--epochs", "1", "--amp", "bf16", "--channels-last", "--height", "128", "--width", "64")
    rc = train_script.main(tiny_args(tiny_root, logs, *extra))
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((logs / "results.json").read_text())
    assert rec["config"]["amp"] == "bf16" and rec["config"]["channels_last"] is True
    assert all(math.isfinite(v) for v in rec["common"].values() if isinstance(v, float))


STEP_SCRIPT = """
import copy, gc, sys
import numpy as np, torch, torch.nn.functional as F
from torch import nn
from cdsm.memory import create_memory
from cdsm.utils import distributed as du

rank, world = du.init_from_env("cpu")
torch.manual_seed(0)
model = nn.Linear(6, 4)
ref = copy.deepcopy(model)
feats = F.normalize(torch.randn(24, 4), dim=1)
labels = np.repeat(np.arange(6), 4)
def memory():
    m = create_memory("CMhybrid_v4", 4, 6, temp=0.05, momentum=0.2, mem_instances=2)
    m.initialise(feats, labels, core_indices=np.arange(24))
    return m
mine, single = memory(), memory()
x, y, idx = torch.randn(8, 6), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.arange(8)
teacher = F.normalize(torch.randn(8, 4), dim=1)
ddp = nn.parallel.DistributedDataParallel(model)
part = slice(rank * 4, rank * 4 + 4)
loss, _ = mine.loss(F.normalize(ddp(x[part]), dim=1), y[part])  # this rank's half of the batch
loss.backward()
mine.update(*(du.gather_batch(v[part]) for v in (teacher, y, idx)))  # the whole batch, in order
loss, _ = single.loss(F.normalize(ref(x), dim=1), y)  # the single-process step
loss.backward()
single.update(teacher, y, idx)
grad = max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), ref.parameters()))
mem = float((mine.features - single.features).abs().max())
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
    """Each rank's loss on its half, averaged by DDP, gives the single-process gradient; the
    memory updated with the gathered batch equals the single-process memory on both ranks."""
    script = tmp_path / "step.py"
    script.write_text(STEP_SCRIPT)
    p = torchrun([str(script)], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("gradient difference") == 2


@pytest.mark.slow  # trains a network
def test_two_process_gloo_run_matches_single_process_and_resumes_in_one(tiny_root, tmp_path):
    """A real torchrun (2 processes, gloo) against the single-process run of the same tiny config
    (4 ghost BN slices: 2 per process). Equal: the initial evaluation and the first epoch's
    clustering (same seed and model; features extracted in two shards and gathered in dataset
    order). Not equal: the training draws (process 1 draws the augmentations of its half from
    its own RNG stream) and the last digits of the sums, so the trained models differ like two
    seeds; with 8 test identities mAP moves by several points between such runs, so the metrics
    are required to be finite and within 20 points of each other."""
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    common = ("--num-threads", "1", "--epochs", "2")
    p = torchrun(["examples/train.py", *tiny_args(tiny_root, ddp, *common)], CDSM_DIR)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run1 = [sys.executable, "examples/train.py", *tiny_args(tiny_root, single, *common)]
    p = subprocess.run(run1, cwd=CDSM_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    d, s = (json.loads((o / "results.json").read_text()) for o in (ddp, single))
    assert d["history"][0]["clusters"] == s["history"][0]["clusters"]
    assert d["history"][0]["outliers"] == s["history"][0]["outliers"]
    assert d["initial"]["mAP"] == pytest.approx(s["initial"]["mAP"], abs=1e-6)
    assert math.isfinite(d["common"]["mAP"]) and abs(d["common"]["mAP"] - s["common"]["mAP"]) < 20
    assert "Traceback" not in (ddp / "log.txt").read_text()

    # the distributed checkpoint resumes in a single process
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # --resume refuses settings that differ from the checkpoint's (--epochs included): the copy is
    # made to record a run planned for 3 epochs, so that the single process trains the third
    ckpt = torch.load(ddp / "checkpoint.pth.tar", weights_only=True)
    ckpt["config"]["epochs"] = 3
    torch.save(ckpt, resumed / "from_ddp.pth.tar")
    run2 = [sys.executable, "examples/train.py",
            *tiny_args(tiny_root, resumed, "--num-threads", "1", "--epochs", "3",
                       "--resume", str(resumed / "from_ddp.pth.tar"))]
    p = subprocess.run(run2, cwd=CDSM_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads((resumed / "results.json").read_text())
    assert len(r["history"]) == 3 and r["history"][:2] == d["history"]
