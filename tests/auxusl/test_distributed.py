"""Ghost BatchNorm (the BN statistics of the original's 4-GPU DataParallel runs)."""

import copy
import json
import math

import torch
import torch.nn.functional as F
from torch import nn

from auxusl.models.ghost_bn import set_ghost_bn


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
    ref_mean, ref_var = plain.running_mean.clone(), plain.running_var.clone()
    for i, part in enumerate(x.chunk(4)):
        rm, rv = ref_mean.clone(), ref_var.clone()
        ref = F.batch_norm(part, rm, rv, plain.weight, plain.bias, True, plain.momentum, plain.eps)
        assert torch.allclose(out[4 * i : 4 * i + 4], ref, atol=1e-6)
        if i == 0:
            first = rm, rv
    assert torch.allclose(bn.running_mean, first[0], atol=1e-6)
    assert torch.allclose(bn.running_var, first[1], atol=1e-6)
    assert int(bn.num_batches_tracked) == 1
    bn.eval(), plain.eval()
    plain.load_state_dict(bn.state_dict())
    assert torch.allclose(bn(x), plain(x), atol=1e-6)


def test_ghost_bn_keeps_the_frames_of_a_tracklet_in_one_slice():
    class Clip(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(2)

        def forward(self, clips):
            b, t = clips.shape[:2]
            return self.bn(clips.reshape(b * t, -1)).view(b, t, -1)

    torch.manual_seed(1)
    m = set_ghost_bn(Clip(), 2)
    clips = torch.randn(6, 4, 2)  # 6 tracklets of 4 frames -> slices of 3 tracklets (12 frames)
    out = m(clips)
    ref = torch.cat([F.batch_norm(c.reshape(-1, 2), None, None, training=True) for c in clips.chunk(2)])
    assert torch.allclose(out.reshape(-1, 2), ref, atol=1e-6)


def test_amp_bf16_tiny_run_has_finite_losses(train_script, small_root, tmp_path, capsys):
    from test_train_cli import run_main, tiny

    logs = tmp_path / "amp"
    args = tiny(
        small_root, logs, "OPTIM.EPOCHS", "1", "MODEL.AMP", "bf16", "MODEL.CHANNELS_LAST", "True", aux=False
    )
    rc, _, err = run_main(train_script, args, capsys)
    assert rc == 0, err
    rec = json.loads((logs / "results.json").read_text())
    assert rec["config"]["MODEL"]["AMP"] == "bf16"
    assert all(math.isfinite(v) for v in rec["common"].values() if isinstance(v, float))


def test_bad_amp_value_is_refused(train_script, small_root, tmp_path, capsys):
    from test_train_cli import run_main, tiny

    rc, _, err = run_main(
        train_script, tiny(small_root, tmp_path / "x", "MODEL.AMP", "fp8", aux=False), capsys
    )
    assert rc == 2 and "MODEL.AMP" in err
