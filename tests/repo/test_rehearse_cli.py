"""./reproduce.sh rehearse and gpu-check as a user types them: bad arguments are one line and exit 2
with nothing generated or written; without a CUDA GPU the GPU check says so and exits 0. (The
rehearsal itself is run per method in tests/<method>/test_rehearse.py, on the small benchmark.)"""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args, tmp):
    env = {**os.environ, "REID_LOGS": str(tmp / "logs"), "REID_REHEARSAL": str(tmp / "rehearsal")}
    return subprocess.run(["bash", str(ROOT / "reproduce.sh"), *args], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.mark.parametrize("args, message", [
    (("rehearse",), "usage: ./reproduce.sh rehearse METHOD DATASET"),
    (("rehearse", "bogus", "market"), "usage: ./reproduce.sh rehearse METHOD DATASET"),
    (("rehearse", "cdsm"), "usage: ./reproduce.sh rehearse cdsm DATASET (datasets: market duke msmt17)"),
    (("rehearse", "cdsm", "mars"), "cdsm does not support dataset 'mars' (valid: market duke msmt17)"),
    (("rehearse", "pul", "market"), "usage: ./reproduce.sh rehearse pul SOURCE TARGET"),
    (("rehearse", "pul", "duke", "duke"), "pul needs two different datasets"),
    (("rehearse", "ccc", "market", "--fast"), "rehearse: unknown option '--fast'"),
    (("rehearse", "ccc", "market", "--amp"), "--amp needs a value"),
    (("gpu-check", "now"), "gpu-check takes no argument"),
])
def test_bad_arguments(tmp_path, args, message):
    r = run(*args, tmp=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reproduce.sh: {message}"), r.stderr
    assert not (tmp_path / "logs").exists() and not (tmp_path / "rehearsal").exists()


def test_gpu_check_without_a_gpu(tmp_path):
    probe = subprocess.run([str(ROOT / ".venv/bin/python"), "-c",
                            "import torch; print(torch.cuda.is_available())"], capture_output=True, text=True)
    if probe.stdout.strip() != "False":
        pytest.skip("this machine has a CUDA GPU: the check would run for real")
    r = run("gpu-check", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("gpu-check: no CUDA GPU is visible to PyTorch here "
                                "(torch.cuda.is_available() is False): nothing was checked")
    assert not (tmp_path / "logs").exists() and not (tmp_path / "rehearsal").exists()


def test_print_config_resolves_without_data_or_logs(tmp_path):
    import yaml
    r = run("rehearse", "cdsm", "market", "--full-model", "--amp", "fp16", "--print-config", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert (cfg["scale"], cfg["epochs"], cfg["iters"], cfg["arch"], cfg["amp"], cfg["batch_size"]) == \
        ("rehearsal", 1, 20, "resnet50", "fp16", 128)
    assert not (tmp_path / "logs").exists() and not (tmp_path / "rehearsal").exists()
