"""train.py / test.py end to end on tiny synthetic data: outputs, evaluation of a checkpoint,
the resume test, and bad input (each a clear one-line error, never a traceback)."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import AUXUSL_DIR, CONFIGS

from auxusl.datasets import create
from auxusl.tools import make_aux


def tiny(data_dir, out, *extra, target="duke", aux=True):
    """A run that takes seconds: ResNet-18 at 32 x 16, batches of 16 clips, 2 epochs."""
    config = CONFIGS / ("smoke_dukevideo.yml" if target == "duke" else "smoke_mars.yml")
    opts = [
        "DATASETS.DIR",
        str(data_dir),
        "OUTPUT_DIR",
        str(out),
        "INPUT.SIZE_TRAIN",
        "[32, 16]",
        "INPUT.SIZE_TEST",
        "[32, 16]",
        "INPUT.PADDING",
        "1",
        "DATALOADER.TRAIN_BATCH_SIZE",
        "16",
        "DATALOADER.CLUSTER_SEQ_LEN",
        "4",
        "CLUSTER.K1",
        "6",
        "CLUSTER.K2",
        "2",
        "CLUSTER.ADAPTIVE_RHO",
        "0.08",
        "OPTIM.EPOCHS",
        "2",
        "OPTIM.STEPS",
        "[2]",
        "CHECKPOING.SAVE_STEP",
        "[-1]",
        "PROGRESS",
        "False",
        "PRINT_PERIOD",
        "0",
        "SEED",
        "7",
    ]
    if target == "duke" and not aux:
        opts += [
            "CLUSTER.CCE_OPTION",
            "False",
            "CLUSTER.STR_OPTION",
            "False",
            "TEST.OVERLAP_CONSTRAINT",
            "False",
            "TEST.CCE_OPTION",
            "False",
            "TEST.STR_OPTION",
            "False",
        ]
    return ["--config-file", str(config), *opts, *extra]


@pytest.fixture(scope="module")
def aux_dir(small_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("aux")
    assert (
        make_aux.main(
            [
                "--config-file",
                str(CONFIGS / "smoke_dukevideo.yml"),
                "--data-root",
                str(small_root),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def run_main(script, args, capsys):
    rc = script.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_run_outputs_and_checkpoint_evaluation(
    train_script, test_script, small_root, aux_dir, tmp_path, capsys
):
    logs = tmp_path / "logs"
    rc, out, err = run_main(train_script, tiny(small_root, logs, "PICKLE_PATH", str(aux_dir)), capsys)
    assert rc == 0, err
    rec = json.loads((logs / "results.json").read_text())
    assert (rec["method"], rec["variant"], rec["target"], rec["scale"]) == (
        "auxusl",
        "ours",
        "dukevideo",
        "smoke",
    )
    assert rec["selection"] == "best-on-test" and rec["native"]["ap"] == "stepwise"
    assert rec["native"]["mAP"] == rec["common"]["mAP"] and rec["epochs"] == 2 and len(rec["history"]) == 2
    assert set(rec["test_time_ablation"]) == {"none", "toc", "scp", "sts", "toc+scp+sts"}
    assert rec["test_time_ablation"]["toc+scp+sts"]["mAP"] == pytest.approx(rec["common"]["mAP"])
    assert set(rec["initial_test_time_ablation"]) == set(rec["test_time_ablation"])
    assert rec["initial_test_time_ablation"]["toc+scp+sts"]["mAP"] == pytest.approx(rec["initial"]["mAP"])
    assert rec["auxiliary"]["CLUSTER.CCE_OPTION"] and not rec["auxiliary"]["CLUSTER.ICDBSCAN_OPTION"]
    for h in rec["history"]:
        assert {"clusters", "outliers", "iters", "eps", "extract_s", "cluster_s", "train_s", "mAP"} <= set(h)
    assert rec["history"][0]["eps"] == rec["history"][1]["eps"]  # eps frozen after the first epoch
    log = (logs / "log.txt").read_text()
    for text in (
        "==> epoch 2:",
        "iterations (DTI)",
        "SCP (training)",
        "STS (training)",
        "eps for cluster",
        "test-time terms none",
    ):
        assert text in log
    assert "ReLU" not in log
    for f in (
        "config.yaml",
        "checkpoint_new.pth.tar",
        "model_mAP_best.pth.tar",
        "model_top1_best.pth.tar",
        "cluster_result_000.pickle",
    ):
        assert (logs / f).exists(), f
    assert list(logs.glob("events.out.tfevents.*")) and not list(logs.glob(".*.tmp"))
    best = torch.load(logs / "model_mAP_best.pth.tar", weights_only=True)
    assert not any(k.startswith("classifier.") for k in best["state_dict"])  # REMAIN_CLASSIFIER False
    # examples/test.py (RESUME ... TEST.EVAL_ONLY True) gives the reported numbers back
    ev = tmp_path / "eval"
    args = tiny(small_root, ev, "PICKLE_PATH", str(aux_dir), "RESUME", str(logs / "model_mAP_best.pth.tar"))
    rc, out, err = run_main(test_script, args, capsys)
    assert rc == 0, err
    got = json.loads((ev / "eval_results.json").read_text())
    assert got["mAP"] == pytest.approx(rec["common"]["mAP"], abs=1e-6)
    assert "Eval ONLY" in out


@pytest.mark.slow
def test_mars_run_is_ours_minus(train_script, small_root, tmp_path, capsys):
    logs = tmp_path / "m"
    rc, out, err = run_main(train_script, tiny(small_root, logs, "OPTIM.EPOCHS", "1", target="mars"), capsys)
    assert rc == 0, err
    rec = json.loads((logs / "results.json").read_text())
    assert (rec["variant"], rec["target"], rec["test_time_ablation"]) == ("ours-", "mars", None)


def test_aux_on_mars_is_refused(train_script, small_root, tmp_path, capsys):
    rc, out, err = run_main(
        train_script, tiny(small_root, tmp_path, "TEST.CCE_OPTION", "True", target="mars"), capsys
    )
    assert rc == 2 and "MARS frame names do not have" in err


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(train_script, small_root, aux_dir, tmp_path, capsys, monkeypatch):
    """3 epochs straight vs 2 epochs, a crash, and RESUME: same teacher, same metrics, same history."""
    extra = ("PICKLE_PATH", str(aux_dir), "OPTIM.EPOCHS", "3", "OPTIM.STEPS", "[3]")
    full = tmp_path / "full"
    rc, _, err = run_main(train_script, tiny(small_root, full, *extra), capsys)
    assert rc == 0, err

    part = tmp_path / "part"
    original = train_script.cluster_features
    calls = {"n": 0}

    def crash_at_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(train_script, "cluster_features", crash_at_third_epoch)
    with pytest.raises(Interrupt):
        train_script.main(tiny(small_root, part, *extra))
    monkeypatch.setattr(train_script, "cluster_features", original)
    ckpt = torch.load(part / "checkpoint_new.pth.tar", weights_only=True)
    assert (
        ckpt["epoch"] == 2
        and ckpt["cluster"]["eps"] == json.loads((full / "results.json").read_text())["history"][0]["eps"]
    )
    rc, out, err = run_main(
        train_script, tiny(small_root, part, *extra, "RESUME", str(part / "checkpoint_new.pth.tar")), capsys
    )
    assert rc == 0, err
    assert "=> Start epoch 3" in out
    a, b = json.loads((full / "results.json").read_text()), json.loads((part / "results.json").read_text())
    for key in ("common", "last", "initial", "best_epoch", "test_time_ablation"):
        assert a[key] == b[key], key
    strip = lambda h: [{k: v for k, v in e.items() if not k.endswith("_s") and k != "seconds"} for e in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    ta = torch.load(full / "checkpoint_new.pth.tar", weights_only=True)
    tb = torch.load(part / "checkpoint_new.pth.tar", weights_only=True)
    for k in ta["state_dict"]:
        assert torch.equal(ta["state_dict"][k], tb["state_dict"][k]), k
    for k in ta["student_dict"]:
        assert torch.equal(ta["student_dict"][k], tb["student_dict"][k]), k
    assert torch.equal(ta["pseudo_labels"], tb["pseudo_labels"])
    assert set(ta["optimizer"]["state"]) == set(tb["optimizer"]["state"])


# ---------------------------------------------------------------------------------- bad input
def test_missing_dataset(train_script, tmp_path, capsys):
    rc, out, err = run_main(train_script, tiny(tmp_path / "nowhere", tmp_path / "logs"), capsys)
    assert rc == 2 and "Traceback" not in err + out
    assert "dataset 'duke' not found: expected the folder" in err and "DukeMTMC-VideoReID" in err
    assert "not found" in (tmp_path / "logs" / "log.txt").read_text()


def test_corrupted_jpeg_names_the_file(train_script, small_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(small_root / "MARS", root / "MARS")
    first_query = create("mars", small_root / "MARS", verbose=False).query[0][0][2]
    victim = root / "MARS" / Path(first_query).relative_to(small_root / "MARS")
    victim.write_bytes(victim.read_bytes()[:200])  # a truncated JPEG (read by the initial evaluation)
    rc, out, err = run_main(train_script, tiny(root, tmp_path / "logs", target="mars"), capsys)
    assert rc == 2 and f"cannot read image {victim}" in err and "Traceback" not in err


def test_no_cluster(train_script, small_root, tmp_path, capsys):
    args = tiny(small_root, tmp_path, "CLUSTER.MIN_SAMPLES", "500", target="mars")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2 and "found no cluster among the" in err and "at epoch 0" in err and "MIN_SAMPLES" in err


@pytest.mark.slow
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_nan_loss(train_script, small_root, tmp_path, capsys, amp):
    args = tiny(small_root, tmp_path, "OPTIM.LR", "1e12", "OPTIM.EPOCHS", "1", "MODEL.AMP", amp,
                target="mars")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2 and "the loss is nan at epoch 0" in err.replace("inf", "nan") and "lower OPTIM.LR" in err
    # bf16 on a CPU: the message also names oneDNN's small-feature-map bug (root README)
    assert ("with bf16 on a CPU, inputs under 48 pixels wide" in err) == (amp == "bf16")


def test_auxiliary_information_for_another_cut_is_refused(
    train_script, small_root, aux_dir, tmp_path, capsys
):
    # aux_dir was made for DENSE_STEP 8; a run cutting the tracklets every 4 frames must not use it
    args = tiny(small_root, tmp_path, "PICKLE_PATH", str(aux_dir), "DATASETS.DENSE_STEP", "4")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2
    assert "does not match the dataset" in err and "dense_step=8" in err
    assert (
        "regenerate it with: python -m auxusl.tools.make_aux --dataset dukevideo" in err
        and "--dense-step 4" in err
    )


def test_missing_auxiliary_information(train_script, small_root, tmp_path, capsys):
    rc, out, err = run_main(
        train_script, tiny(small_root, tmp_path, "PICKLE_PATH", str(tmp_path / "none")), capsys
    )
    assert rc == 2 and "overlap_relation.npz does not exist; regenerate it with" in err


def test_resume_from_a_missing_checkpoint(train_script, small_root, tmp_path, capsys):
    rc, out, err = run_main(
        train_script, tiny(small_root, tmp_path, "RESUME", str(tmp_path / "x.pth.tar")), capsys
    )
    assert rc == 2 and "x.pth.tar does not exist" in err


def test_original_sched_default_is_refused_as_in_the_original(train_script, small_root, tmp_path, capsys):
    rc, out, err = run_main(
        train_script, tiny(small_root, tmp_path, "OPTIM.SCHED", "warmupmultisteplr"), capsys
    )
    assert rc == 2 and "OPTIM.SCHED 'warmupmultisteplr' is not supported" in err


# ---------------------------------------------------------------------------------- adapter
@pytest.mark.parametrize(
    "args, message",
    [
        (["market"], "auxusl reports mars and dukevideo, not 'market'"),
        (["mars", "--aux", "on"], "MARS has no time stamps"),
        (["dukevideo", "--aux", "maybe"], "--aux must be on, off or both"),
        (["dukevideo", "--bogus"], "unknown option '--bogus'"),
    ],
)
def test_adapter_arguments(args, message):
    p = subprocess.run(
        ["bash", str(AUXUSL_DIR / "reproduce.sh"), *args], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 2 and message in p.stderr and p.stderr.count("\n") == 1


@pytest.mark.slow
def test_adapter_runs_both_variants(small_root, tmp_path):
    """--aux both on dukevideo: the aux files are made, then Ours- and Ours each get a results.json."""
    logs = tmp_path / "run"
    opts = tiny(small_root, logs, "OPTIM.EPOCHS", "1")[2:]
    opts = [o for i, o in enumerate(opts) if not (opts[i - 1 : i] == ["OUTPUT_DIR"] or o == "OUTPUT_DIR")]
    opts = [o for i, o in enumerate(opts) if not (opts[i - 1 : i] == ["DATASETS.DIR"] or o == "DATASETS.DIR")]
    p = subprocess.run(
        [
            "bash",
            str(AUXUSL_DIR / "reproduce.sh"),
            "dukevideo",
            "--data-root",
            str(small_root),
            "--logs-dir",
            str(logs),
            "--smoke",
            "--",
            *opts,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    minus = json.loads((tmp_path / "run-noaux" / "results.json").read_text())
    plus = json.loads((tmp_path / "run-aux" / "results.json").read_text())
    assert (minus["variant"], plus["variant"]) == ("ours-", "ours")
    assert (tmp_path / "run-aux" / "aux" / "aux_info.json").exists()
    assert not (tmp_path / "run-noaux" / "aux").exists()
    assert np.isfinite(plus["common"]["mAP"])

    # --eval of the smoke checkpoint without --smoke: the checkpoint's own configuration is used
    # (no preset file over it), and test.py's flags after -- come after the adapter's KEY VALUE pairs
    best = tmp_path / "run-aux" / "model_mAP_best.pth.tar"
    p = subprocess.run(["bash", str(AUXUSL_DIR / "reproduce.sh"), "dukevideo", "--data-root", str(small_root),
                        "--eval", str(best), "--", "--visrank", "2", "--visrank-queries", "1"],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    scored = json.loads((tmp_path / "run-aux" / "eval" / "eval_results.json").read_text())
    assert np.isfinite(scored["mAP"])
    assert len(list((tmp_path / "run-aux" / "eval" / "visrank").glob("*.jpg"))) == 2
