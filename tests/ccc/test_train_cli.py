"""train.py / test.py: the original's commands, presets, outputs, and bad input (clear errors,
no traceback)."""
import json
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import CCC_DIR, check_best_and_last, tiny_args

COMMON = ("--arch resnet50 --resnet-pretrained V1 --pooling-type gem --cm-mode hd_camera --loss-with-camera "
          "--root-dir $HOME/Dataset")
SIZE = {"market": "--dataset market1501 --height 256 --width 128",
        "msmt17": "--dataset msmt17 --height 256 --width 128",
        "veri": "--dataset veri --height 224 --width 224"}
K_IT = {"market": "750 --iters 200", "msmt17": "1000 --iters 400", "veri": "1000 --iters 400"}
IT = {"market": "200", "msmt17": "400", "veri": "400"}


def readme(cluster, target):
    """The original README's / run_code.sh's commands (after 'python CCC/main*.py')."""
    if cluster == "hdc":
        outlier = "" if target == "veri" else " --hdc-outlier"   # run_code.sh; see configs/hdc/veri.yml
        return (f"{SIZE[target]} --num-clusters {K_IT[target]} --num-epochs 60 --warmup-iters 10 "
                f"--warmup-with-dbscan --dbscan-eps 0.6 {COMMON}{outlier} --hdc-centroids "
                "--hdc-init k-means++2 "
                "--log-dir logs/log")
    if cluster == "dbscan":
        return (f"{SIZE[target]} --iters {IT[target]} --num-epochs 60 --warmup-iters 10 --dbscan-eps 0.6 "
                f"{COMMON} "
                "--log-dir logs/log_dbscan")
    return (f"{SIZE[target]} --num-clusters {K_IT[target]} --num-epochs 60 --warmup-iters 10 "
            "--warmup-with-dbscan "
            f"--dbscan-eps 0.6 {COMMON} --log-dir logs/log_kmeans")


@pytest.mark.parametrize("cluster", ["hdc", "dbscan", "kmeans"])
@pytest.mark.parametrize("target", ["market", "msmt17", "veri"])
def test_presets_equal_the_readme_commands(train_script, monkeypatch, cluster, target):
    monkeypatch.setenv("HOME", "/home/someone")
    cmd = shlex.split(readme(cluster, target).replace("$HOME", "/home/someone"))
    original = vars(train_script.parse_args(["--cluster", cluster, *cmd]))
    preset = vars(train_script.parse_args(["--config", str(CCC_DIR / "configs" / cluster / f"{target}.yml"),
                                           "--root-dir", "/home/someone/Dataset"]))
    original.pop("config"), preset.pop("config")
    assert preset["bn_slices"] == original["bn_slices"] == 2   # the README's 2 GPUs (DataParallel)
    assert original == preset


def test_original_defaults(train_script):
    a = train_script.parse_args([])
    assert (a.cluster, a.dataset, a.arch, a.resnet_pretrained, a.seed, a.batch_size, a.num_instances,
            a.num_workers, a.num_clusters, a.dbscan_eps, a.cluster_min_instances, a.jaccard_k1, a.jaccard_k2,
            a.num_epochs, a.iters, a.lr, a.lr_weight_decay, a.lr_steps, a.lr_gamma, a.warmup_iters,
            a.warmup_factor, a.warmup_version, a.cm_mode, a.cm_temperature, a.cm_momentum) == \
        ("hdc", "market1501", "resnet50", "V1", 999, 256, 16, 32, 750, 0.6, 4, 30, 6, 70, 200, 3.5e-4,
         5e-4, 20,
         0.1, 10, 0.1, "v1", "hd_camera", 0.05, 0.1)
    assert (a.hdc_similarity, a.hdc_max_iter, a.hdc_init, a.threshold, a.hdc_camera_version, a.eval_dist,
            a.eval_step_epoch, a.eval_start_epoch) == ("Euler Cosine", 80, "k-means++2", None, None, None,
                                                       5, 0)
    assert not (a.loss_with_camera or a.warmup_with_dbscan or a.hdc_outlier or a.hdc_centroids or a.rerank
                or a.no_cam or a.no_jaccard or a.hdc_normalize or a.eval_and_ckpt)
    assert a.log_dir == "logs/log" and train_script.parse_args(["--cluster",
                                                                "kmeans"]).log_dir == "logs/log_kmeans"


def test_smoke_preset_only_changes_sizes(train_script):
    for cluster in ("hdc", "dbscan", "kmeans"):
        configs = ["--config", str(CCC_DIR / "configs" / cluster / "market.yml"), "--config",
                   str(CCC_DIR / "configs" / "smoke.yml")]
        extra = CCC_DIR / "configs" / f"smoke_{cluster}.yml"
        paper = vars(train_script.parse_args(configs[:2]))
        smoke = vars(train_script.parse_args(configs + (["--config", str(extra)] if extra.exists() else [])))
        changed = {k for k in paper if paper[k] != smoke[k]} - {"config"}
        assert changed <= {"scale", "arch", "pretrained", "height", "width", "pad", "batch_size",
                           "num_instances",
                           "num_workers", "num_threads", "bn_slices", "jaccard_k1", "jaccard_k2",
                           "dbscan_eps",
                           "cluster_min_instances", "num_clusters", "warmup_iters", "num_epochs", "iters",
                           "eval_step_epoch", "print_freq", "seed"}, changed
        assert (smoke["cluster"], smoke["cm_mode"], smoke["loss_with_camera"], smoke["lr"]) == \
            (cluster, "hd_camera", True, 3.5e-4)


def test_bad_flags(train_script, tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("num_cluster: 3\n")
    for argv, message in ((["--config", str(bad)], "unknown key 'num_cluster'"),
                          (["--hdc-camera-version", "v9"], "only None is wired up"),
                          (["--dbscan-eps", "1.5"], "--dbscan-eps must be in (0, 1)"),
                          (["--cluster", "optics"], "invalid choice")):
        with pytest.raises(SystemExit) as e:
            train_script.parse_args(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def run_main(train_script, args, capsys):
    rc = train_script.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_missing_dataset(train_script, tmp_path, capsys):
    rc, out, err = run_main(train_script, tiny_args(tmp_path / "nothing", tmp_path / "logs"), capsys)
    assert rc == 2
    assert "dataset 'market1501' not found" in err and "Market-1501-v15.09.15" in err and "--root-dir" in err
    assert "Traceback" not in err + out
    assert "not found" in (tmp_path / "logs" / "log.txt").read_text()


def test_missing_dataset_from_the_command_line(tmp_path):
    # the real entry point: one line on stderr, status 2, no traceback
    p = subprocess.run([sys.executable, "examples/main.py", "--dataset", "veri", "--root-dir", str(tmp_path),
                        "--log-dir", str(tmp_path / "logs")], cwd=CCC_DIR, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2
    assert f"error: dataset 'veri' not found: expected the folder {tmp_path}/VeRi" in p.stderr
    assert "Traceback" not in p.stderr


def test_more_clusters_than_images(train_script, tiny_root, tmp_path, capsys):
    for cluster in ("hdc", "kmeans"):
        rc, out, err = run_main(train_script, tiny_args(tiny_root, tmp_path / cluster, "--num-clusters",
                                                        "500",
                                                        cluster=cluster), capsys)
        assert rc == 2
        assert "--num-clusters 500 is larger than the number of training images (111)" in err
        assert "Traceback" not in err + out
    # the library says the same when it is called directly
    from ccc.errors import ClusteringError
    from ccc.hdc import HDC
    with pytest.raises(ClusteringError, match="larger than the number of training samples"):
        HDC(5).fit(__import__("numpy").ones((3, 4), "float32"))


@pytest.fixture
def corrupt_copy(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", root / "Market-1501-v15.09.15")
    victim = sorted((root / "Market-1501-v15.09.15" / "bounding_box_train").glob("*.jpg"))[5]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])   # a truncated JPEG
    return root, victim


def test_corrupted_jpeg_names_the_file(train_script, corrupt_copy, tmp_path, capsys):
    root, victim = corrupt_copy
    rc, out, err = run_main(train_script, tiny_args(root, tmp_path / "logs"), capsys)
    assert rc == 2
    assert f"cannot read image {victim.resolve()}" in err
    assert "Traceback" not in err.splitlines()[0]


def test_dbscan_finds_no_cluster(train_script, tiny_root, tmp_path, capsys):
    args = tiny_args(tiny_root, tmp_path / "logs", "--cluster-min-instances", "500", cluster="dbscan")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2
    assert "DBSCAN (eps 0.5, min_samples 500) found no cluster among the 111 training images at epoch 0" \
        in err
    assert "Traceback" not in err + out


def test_hdc_leaves_no_cluster(train_script, tiny_root, tmp_path, capsys):
    # no warm-up; every HDC cluster (K 12, about 9 images each) is below the minimum size
    args = tiny_args(tiny_root, tmp_path / "logs", "--warmup-iters", "0", "--cluster-min-instances", "60")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2
    assert "HDC (K 12) left no cluster at epoch 0: every one of the 111 training images is an outlier or " \
           "in a " \
           "cluster smaller than --cluster-min-instances 60" in err
    assert "Traceback" not in err + out


def test_hdc_every_sample_peripheral(train_script, tiny_root, tmp_path, capsys):
    # a fixed POD threshold below every discrepancy: everything is an outlier
    args = tiny_args(tiny_root, tmp_path / "logs", "--warmup-iters", "0", "--threshold", "-1")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2 and "HDC (K 12) left no cluster at epoch 0" in err and "--threshold" in err


@pytest.mark.slow
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_nan_loss_stops_with_a_clear_error(train_script, tiny_root, tmp_path, capsys, amp):
    args = tiny_args(tiny_root, tmp_path / "logs", "--lr", "1e12", "--amp", amp)
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2
    assert "the loss is nan at epoch" in err and "lower --lr" in err
    # bf16 on a CPU: the message also names oneDNN's small-feature-map bug (root README)
    assert ("with bf16 on a CPU, inputs under 48 pixels wide" in err) == (amp == "bf16")


@pytest.mark.slow
def test_run_outputs_and_test_script(tiny_run, test_script, tiny_root, tmp_path, capsys):
    logs = tiny_run
    record = json.loads((logs / "results.json").read_text())
    assert (record["method"], record["variant"], record["target"], record["scale"]) == ("ccc", "hdc",
                                                                                        "market", "smoke")
    assert record["selection"] == "best-on-test" and record["native"]["ap"] == "stepwise"
    assert record["native"]["mAP"] == record["common"]["mAP"]
    assert record["epochs"] == 3 and len(record["history"]) == 3
    assert set(record["initial"]) >= {"mAP", "rank1", "rank5", "rank10", "mINP"}
    h0, h1, h2 = record["history"]
    assert h0["clustering"] == "DBSCAN warm-up" and h1["clustering"] == h2["clustering"] == "HDC"
    assert "hdc_iterations" in h1
    for h in record["history"]:
        assert {"clusters", "outliers", "extract_s", "cluster_s", "train_s", "mAP"} <= set(h)
    assert record["common"]["mAP"] == max(h["mAP"] for h in record["history"])
    assert record["last"]["mAP"] == h2["mAP"]
    check_best_and_last(logs, record)
    log = (logs / "log.txt").read_text()
    assert "==> epoch 0: DBSCAN warm-up" in log and "==> epoch 1: HDC" in log and "time extract" in log
    assert yaml.safe_load((logs / "config.yaml").read_text())["cluster"] == "hdc"
    assert not list(logs.glob(".*.tmp"))  # atomic writes leave no temporary file
    # examples/test.py evaluates model_best.pth.tar to the reported numbers
    rc = test_script.main(["--dataset", "market1501", "--root-dir", str(tiny_root), "--resume",
                           str(logs / "model_best.pth.tar"), "--num-workers", "0", "--output",
                           str(tmp_path / "m.json")])
    assert rc == 0
    got = json.loads((tmp_path / "m.json").read_text())
    assert got["mAP"] == pytest.approx(record["common"]["mAP"], abs=1e-6)
    rc = test_script.main(["--dataset", "market1501", "--root-dir", str(tiny_root), "--resume",
                           str(logs / "checkpoint.pth.tar"), "--num-workers", "0", "--rerank"])
    assert rc == 0 and "re-ranked mAP" in capsys.readouterr().out


@pytest.mark.slow
def test_an_original_checkpoint_with_mangled_keys(tiny_run, test_script, tiny_root, tmp_path):
    """3C saves {k.strip('module.'): v}; test.py reads it (num_batches_track -> ..._tracked)."""
    import torch
    state = torch.load(tiny_run / "model_best.pth.tar", weights_only=True)["model"]
    original = {("module." + k).strip("module."): v for k, v in state.items()}
    assert any(k.endswith("num_batches_track") for k in original)
    torch.save(original, tmp_path / "model_best.pth")
    args = ["--dataset", "market1501", "--root-dir", str(tiny_root), "--num-workers", "0", "--arch",
            "resnet18",
            "--height", "32", "--width", "16"]
    assert test_script.main(args + ["--resume", str(tmp_path / "model_best.pth"), "--output",
                                    str(tmp_path / "a")]) == 0
    assert test_script.main(args + ["--resume", str(tiny_run / "model_best.pth.tar"), "--output",
                                    str(tmp_path / "b")]) == 0
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text()


@pytest.mark.slow
def test_tensorboard_scalars_without_tensorflow(tiny_run):
    code = ("from tensorboard.backend.event_processing.event_accumulator import EventAccumulator;"
            f"e = EventAccumulator({str(tiny_run)!r}); e.Reload(); print(sorted(e.Tags()['scalars']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    for tag in ("eval/mAP", "cluster/clusters", "cluster/outliers", "cluster/hdc_iterations", "train/lr",
                "train/loss", "time/extract", "time/cluster", "time/train"):
        assert tag in p.stdout, p.stderr
    assert "tensorflow" not in sys.modules


@pytest.mark.slow
@pytest.mark.parametrize("cluster", ["dbscan", "kmeans"])
def test_the_other_variants_run(train_script, tiny_root, tmp_path, capsys, cluster):
    extra = ["--num-epochs", "1", "--warmup-iters", "0"] if cluster == "kmeans" else ["--num-epochs", "1"]
    rc, out, err = run_main(train_script, tiny_args(tiny_root, tmp_path / "logs", *extra,
                                                    cluster=cluster), capsys)
    assert rc == 0, err
    record = json.loads((tmp_path / "logs" / "results.json").read_text())
    assert record["variant"] == cluster
    assert record["history"][0]["clustering"] == {"dbscan": "DBSCAN", "kmeans": "k-means"}[cluster]
