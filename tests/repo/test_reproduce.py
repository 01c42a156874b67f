"""The repository's entry points: reproduce.sh argument handling, CI, README commands."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("pul", "buc", "cdsm", "ccc", "auxusl")


def check_in_chromium(page, **kwargs):
    """The headless-Chromium check of tests/common_eval/test_report.py: (images decoded, images)."""
    spec = importlib.util.spec_from_file_location("ce_report", ROOT / "tests/common_eval/test_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check_in_chromium(page, **kwargs)


def run(*args, env=None):
    return subprocess.run(["bash", str(ROOT / "reproduce.sh"), *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, message", [
    (("bogus",), "unknown command or method 'bogus' (valid: demo setup test table report extract export "
                 "rehearse gpu-check pul buc cdsm ccc auxusl)"),
    (("cdsm",), "usage: ./reproduce.sh cdsm DATASET"),
    (("cdsm", "veri"), "cdsm does not support dataset 'veri' (valid: market duke msmt17)"),
    (("ccc", "duke"), "ccc does not support dataset 'duke' (valid: market msmt17 veri)"),
    (("pul", "market"), "usage: ./reproduce.sh pul SOURCE TARGET"),
    (("pul", "duke", "duke"), "pul needs two different datasets"),
    (("auxusl", "market"), "auxusl does not support dataset 'market' (valid: mars dukevideo)"),
    (("test", "--nope"), "test: unknown option '--nope'"),
    (("extract",), "usage: ./reproduce.sh extract METHOD --checkpoint CKPT"),
    (("export", "nope"), "usage: ./reproduce.sh export METHOD --checkpoint CKPT"),
])
def test_bad_arguments_give_one_clear_line(args, message):
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def built_methods():
    return [m for m in METHODS if os.access(ROOT / m / "reproduce.sh", os.X_OK)]


@pytest.mark.parametrize("method", built_methods() or [pytest.param("none", marks=pytest.mark.skip(
    reason="no method subproject is built yet"))])
def test_missing_data_root_and_dataset_folder(method, tmp_path):
    names = ["duke", "market"] if method == "pul" else ["market" if method != "auxusl" else "mars"]
    out = run(method, *names, "--data-root", str(tmp_path / "nowhere"))
    assert out.returncode == 2 and "data root" in out.stderr and "does not exist" in out.stderr
    out = run(method, *names, "--data-root", str(tmp_path))
    assert out.returncode == 2 and "not found: expected the folder" in out.stderr
    assert out.stderr.count("\n") == 1


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(\./reproduce\.sh test)\b", readme, flags=re.M)
    assert commands, "README must show the test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./reproduce\.sh test$", ci, flags=re.M)
    assert os.access(ROOT / ".ci" / "run", os.X_OK) and os.access(ROOT / "reproduce.sh", os.X_OK)


def test_every_built_method_follows_the_contract():
    for m in built_methods():
        for f in ("pyproject.toml", "requirements.txt", "README.md", "examples/train.py",
                  "examples/test.py"):
            assert (ROOT / m / f).is_file(), f"{m}/{f} is missing"
        assert "Deviations from the original code" in (ROOT / m / "README.md").read_text()
        assert (ROOT / "tests" / m).is_dir(), f"tests/{m} is missing"


def test_setup_is_idempotent_and_fast_when_nothing_changed():
    out = run("setup")
    assert out.returncode == 0, out.stderr
    assert "set-up" not in out.stdout  # nothing reinstalled


def test_table_command(tmp_path):
    out = run("table", str(tmp_path / "none"))
    assert out.returncode == 2 and "no such folder" in out.stderr


NPROC = {"cdsm": ("market", "CDSM_PYTHON"), "auxusl": ("mars", "AUXUSL_PYTHON"), "buc": ("market", "PYTHON"),
         "ccc": ("market", "CCC_PYTHON")}


@pytest.mark.parametrize("method", sorted(NPROC))
def test_nproc_starts_the_training_under_torchrun(method, tmp_path):
    """The adapter's command line, seen by a stand-in interpreter that prints its arguments."""
    target, var = NPROC[method]
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "ARGS: $*"\n')
    fake.chmod(0o755)

    def adapter(*extra):
        cmd = ["bash", str(ROOT / method / "reproduce.sh"), target, "--data-root", str(tmp_path),
               "--logs-dir", str(tmp_path / "logs"), "--smoke", *extra]
        return subprocess.run(cmd,
                              capture_output=True, text=True, timeout=60, env={**os.environ, var: str(fake)})

    out = adapter("--nproc", "4")
    assert out.returncode == 0, out.stderr
    assert "ARGS: -m torch.distributed.run --standalone --nproc_per_node=4 examples/train.py" in out.stdout
    out = adapter()
    assert out.returncode == 0 and "ARGS: examples/train.py" in out.stdout
    assert "torch.distributed" not in out.stdout
    out = adapter("--nproc", "zero")
    assert out.returncode == 2 and "--nproc must be a positive number" in out.stderr


@pytest.mark.slow  # two 3C smoke runs through the wrapper
def test_a_rerun_never_overwrites_a_run_and_resume_continues_it(tmp_path):
    """Rerunning a task into the same --logs-dir used to replace a run's results.json and best
    model without a word. The second fresh run now stops with one line and writes nothing;
    --resume continues the run that is there."""
    from common_eval.synthetic import generate
    data = tmp_path / "data"
    generate("market1501", data, seed=0, domain="a")
    cmd = ("ccc", "market", "--smoke", "--data-root", str(data), "--logs-dir", str(tmp_path / "logs"))
    short = ("--", "--num-epochs", "2", "--iters", "5")   # evaluated after epochs 1 and 2
    first = run(*cmd, *short)
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "logs" / "ccc" / "market-smoke-hdc"
    assert f"-> {folder}" in first.stdout  # the wrapper names the folder the run writes
    kept = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "log.txt"}
    assert {"results.json", "model_best.pth.tar", "checkpoint.pth.tar"} <= set(kept)

    second = run(*cmd, *short)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(folder) in lines[0], second.stderr
    assert "--resume" in lines[0] and "another" in lines[0]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "log.txt"} == kept

    third = run(*cmd, "--resume", *short)  # the finished run: nothing left to train, the same results
    assert third.returncode == 0, third.stderr[-2000:]
    before, after = json.loads(kept["results.json"]), json.loads((folder / "results.json").read_text())
    assert after["common"] == before["common"] and after["epochs"] == before["epochs"]
    assert (folder / "model_best.pth.tar").read_bytes() == kept["model_best.pth.tar"]

    scored = run("ccc", "market", "--data-root", str(data), "--eval", str(folder / "model_best.pth.tar"),
                 "--", "--visrank", "5", "--visrank-queries", "4")
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert f"{before['common']['mAP']:.1f}" in scored.stdout, scored.stdout[-2000:]
    # the ranked lists go beside the checkpoint: 4 queries and the grid
    assert len(list((folder / "visrank").glob("*.jpg"))) == 5

    # features of a folder of images, and the ONNX export, through the wrapper from another folder
    query = data / "Market-1501-v15.09.15" / "query"
    feats = tmp_path / "feats.npy"
    pulled = run("extract", "ccc", "--checkpoint", str(folder / "model_best.pth.tar"), "--images", str(query),
                 "--out", str(feats))
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    names = feats.with_suffix(".txt").read_text().splitlines()
    assert len(names) == len(list(query.glob("*.jpg"))) and np.load(feats).shape[0] == len(names)
    exported = run("export", "ccc", "--checkpoint", str(folder / "model_best.pth.tar"), "--out",
                   str(tmp_path / "model.onnx"))
    assert exported.returncode == 0 and (tmp_path / "model.onnx").stat().st_size > 0, exported.stderr[-2000:]

    # a second real run of another variant, then one report of both, rendered by Chromium
    other = run("ccc", "market", "--smoke", "--cluster", "dbscan", "--data-root", str(data),
                "--logs-dir", str(tmp_path / "logs"), *short)
    assert other.returncode == 0, other.stderr[-2000:]
    page = tmp_path / "report.html"
    made = run("report", str(tmp_path / "logs"), "--out", str(page))
    assert made.returncode == 0 and str(page) in made.stdout, made.stderr[-2000:]
    html = page.read_text()
    assert "market-smoke-hdc" in html and "market-smoke-dbscan" in html
    if not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it): the page was not rendered")
    ok, total = check_in_chromium(page, screenshot=tmp_path / "report.png")
    assert total >= 3 and ok == total  # the curves of both runs and the ranked-list grid, all decoded
