"""The yacs tree: the original's defaults and configs, _BASE_ presets, clear errors."""

import subprocess
import sys

import pytest
from conftest import AUXUSL_DIR, CONFIGS

from auxusl.config import all_keys, get_cfg, setup_cfg
from auxusl.errors import ConfigError

# the original defaults.py, key by key (those that matter; spec A2)
ORIGINAL_DEFAULTS = {
    "MODEL.ARCH": "resnet50bnn",
    "MODEL.BACKBONE.LAST_STRIDE": 2,
    "MODEL.BACKBONE.PRETRAIN": True,
    "MODEL.LOSSES.ID_OPTION": 1,
    "MODEL.LOSSES.ID_K": 4,
    "MODEL.LOSSES.CE.EPSILON": 0.1,
    "MODEL.LOSSES.TRI_OPTION": 1,
    "MODEL.LOSSES.TRI_MARGIN": 0.5,
    "MODEL.LOSSES.TRI_LAMBDA": -1.0,
    "MUTUAL_TEACH.CE_SOFT_WRIGHT": 0.5,
    "MUTUAL_TEACH.TRI_SOFT_WRIGHT": 0.8,
    "MUTUAL_TEACH.ALPHA": 0.999,
    "CLUSTER.K1": 30,
    "CLUSTER.K2": 6,
    "CLUSTER.EPS": 0.6,
    "CLUSTER.ADAPTIVE": False,
    "CLUSTER.MIN_SAMPLES": 4,
    "CLUSTER.ICDBSCAN_OPTION": False,
    "CLUSTER.ICDBSCAN_RELAXED": 0.0,
    "CLUSTER.CCE_OPTION": False,
    "CLUSTER.CCE_LAMBDA": 0.006,
    "CLUSTER.STR_OPTION": False,
    "CLUSTER.STR_LAMBDA": 0.6,
    "CLUSTER.STR_GAMMA": 8.0,
    "INPUT.SIZE_TRAIN": [256, 128],
    "INPUT.SIZE_TEST": [256, 128],
    "INPUT.PADDING": 10,
    "INPUT.FLIP_PROB": 0.5,
    "INPUT.REA.ENABLED": False,
    "INPUT.REA.PROB": 0.5,
    "INPUT.CJ.ENABLED": False,
    "DATASETS.TARGET": "dukemtmc",
    "DATASETS.MODE": "all",
    "DATASETS.DENSE_STEP": 32,
    "DATASETS.NAME": "MARS",
    "DATASETS.MARS_INFO": "info",
    "DATALOADER.NUM_INSTANCE": 4,
    "DATALOADER.NUM_WORKERS": 4,
    "DATALOADER.TRAIN_BATCH_SIZE": 64,
    "DATALOADER.ITERS": 100,
    "DATALOADER.TRAIN_SEQ_LEN": 15,
    "DATALOADER.CLUSTER_BATCH_SIZE": 64,
    "DATALOADER.CLUSTER_SEQ_LEN": 15,
    "DATALOADER.ITERS_CLUSTER_MULTIPLIER": -1.0,
    "DATALOADER.SAMPLE_CONSTRAINT": False,
    "DATALOADER.SAMPLE_CONSTRAINT_EXT_SIZE": -1,
    "DATALOADER.CLUSTER_SAMPLE_MULTI": 1,
    "PICKLE_PATH": "pickles",
    "OPTIM.FORWARD_BATCH_SIZE": 16,
    "OPTIM.OPT": "adam",
    "OPTIM.LR": 0.00035,
    "OPTIM.WEIGHT_DECAY": 5e-4,
    "OPTIM.SCHED": "warmupmultisteplr",
    "OPTIM.STEPS": [40, 70],
    "OPTIM.EPOCHS": 80,
    "TEST.EVAL_ONLY": False,
    "TEST.OVERLAP_CONSTRAINT": False,
    "TEST.CCE_OPTION": False,
    "TEST.CCE_LAMBDA": 0.03,
    "TEST.STR_OPTION": False,
    "TEST.RERANK.ENABLED": False,
    "TEST.RERANK.K1": 20,
    "TEST.RERANK.K2": 6,
    "TEST.RERANK.LAMBDA": 0.3,
    "MODE": "USL",
    "OUTPUT_DIR": "logs/test",
    "RESUME": "",
    "SEED": 1,
    "GPU_Device": [0],
    "CHECKPOING.REMAIN_CLASSIFIER": True,
    "CHECKPOING.SAVE_STEP": [1, 10, 20],
}
# the two original yml files, resolved (spec A2 table)
MARS = {
    "DATASETS.TARGET": "mars",
    "DATASETS.DIR": "datasets",
    "MODE": "usl_MTCluster_base",
    "CLUSTER.ADAPTIVE": True,
    "INPUT.REA.ENABLED": True,
    "DATALOADER.ITERS": 400,
    "DATALOADER.TRAIN_SEQ_LEN": 4,
    "DATALOADER.CLUSTER_BATCH_SIZE": 16,
    "DATALOADER.CLUSTER_SEQ_LEN": 32,
    "DATALOADER.ITERS_CLUSTER_MULTIPLIER": 0.6,
    "CHECKPOING.REMAIN_CLASSIFIER": False,
    "CHECKPOING.SAVE_STEP": [-2],
    "OPTIM.SCHED": "single_step",
    "OPTIM.STEPS": [40],
    "OPTIM.EPOCHS": 40,
    "MODEL.LOSSES.ID_OPTION": 3,
    "MODEL.LOSSES.ID_K": 60,
    "MODEL.LOSSES.TRI_OPTION": 1,
    "MODEL.LOSSES.TRI_LAMBDA": -0.075,
    "GPU_Device": [0, 1, 2, 3],
    "TEST.OVERLAP_CONSTRAINT": False,
    "CLUSTER.CCE_OPTION": False,
    "OUTPUT_DIR": "log/real-m0.6-eps-bnn-nostride1-ft-euc-4GPU-smoothk=60",
}
DUKE = {
    "DATASETS.TARGET": "duke",
    "DATASETS.MODE": "dense",
    "DATASETS.DENSE_STEP": 40,
    "DATASETS.NAME": "DukeMTMC-VideoReID",
    "CLUSTER.ICDBSCAN_OPTION": False,
    "CLUSTER.ICDBSCAN_RELAXED": -1.0,
    "CLUSTER.CCE_OPTION": True,
    "CLUSTER.CCE_LAMBDA": 0.006,
    "CLUSTER.STR_OPTION": True,
    "CLUSTER.STR_LAMBDA": 0.6,
    "CLUSTER.STR_GAMMA": 8.0,
    "OPTIM.STEPS": [50],
    "OPTIM.EPOCHS": 50,
    "MODEL.LOSSES.TRI_OPTION": 2,
    "MODEL.LOSSES.TRI_LAMBDA": -0.01,
    "TEST.OVERLAP_CONSTRAINT": True,
    "TEST.CCE_OPTION": True,
    "TEST.STR_OPTION": True,
    "DATALOADER.ITERS_CLUSTER_MULTIPLIER": 0.6,
}
# what a smoke preset may change: sizes, counts, thresholds calibrated on the synthetic data, run settings
SMOKE_MAY_CHANGE = {
    "SCALE",
    "OUTPUT_DIR",
    "MODEL.DEVICE",
    "MODEL.ARCH",
    "MODEL.BACKBONE.PRETRAIN",
    "INPUT.SIZE_TRAIN",
    "INPUT.SIZE_TEST",
    "INPUT.PADDING",
    "CLUSTER.K1",
    "CLUSTER.K2",
    "CLUSTER.ADAPTIVE_RHO",
    "CLUSTER.MIN_SAMPLES",
    "MUTUAL_TEACH.ALPHA",  # the EMA horizon, scaled to the run's ~200 iterations
    "DATALOADER.NUM_WORKERS",
    "DATALOADER.TRAIN_BATCH_SIZE",
    "DATALOADER.CLUSTER_SEQ_LEN",
    "DATALOADER.CACHE_IMAGES",
    "DATASETS.DENSE_STEP",
    "OPTIM.EPOCHS",
    "OPTIM.STEPS",
    "CHECKPOING.SAVE_STEP",
    "NUM_THREADS",
    "PRINT_PERIOD",
}


def value(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def test_defaults_are_the_originals():
    cfg = get_cfg()
    for key, want in ORIGINAL_DEFAULTS.items():
        assert (
            value(cfg, key) == pytest.approx(want) if isinstance(want, float) else value(cfg, key) == want
        ), key


@pytest.mark.parametrize("name, want", [("USL_MTCluster.yml", MARS), ("USL_MTCluster_Duke.yml", DUKE)])
def test_configs_are_the_originals(name, want):
    cfg = setup_cfg(str(CONFIGS / name))
    for key, v in want.items():
        assert value(cfg, key) == v, key
    changed = {k for k in all_keys(cfg) if value(cfg, k) != value(get_cfg(), k)}
    assert changed <= set(want) | {
        "DATASETS.DIR",
        "OUTPUT_DIR",
        "GPU_Device",
        "MODE",
        "CLUSTER.EPS",
        "CLUSTER.MIN_SAMPLES",
        "DATASETS.MARS_INFO",
        "DATALOADER.TRAIN_BATCH_SIZE",
        "DATALOADER.SAMPLE_CONSTRAINT",
        "DATALOADER.SAMPLE_CONSTRAINT_EXT_SIZE",
        "DATALOADER.CLUSTER_SAMPLE_MULTI",
        "MODEL.LOSSES.ID_OPTION",
        "MODEL.LOSSES.ID_K",
        "CLUSTER.ADAPTIVE",
        "INPUT.REA.ENABLED",
        "DATALOADER.ITERS",
        "DATALOADER.TRAIN_SEQ_LEN",
        "DATALOADER.CLUSTER_BATCH_SIZE",
        "DATALOADER.CLUSTER_SEQ_LEN",
        "CHECKPOING.REMAIN_CLASSIFIER",
        "CHECKPOING.SAVE_STEP",
        "OPTIM.SCHED",
        "OPTIM.STEPS",
        "OPTIM.EPOCHS",
        "MODEL.LOSSES.TRI_OPTION",
        "MODEL.LOSSES.TRI_LAMBDA",
    }


@pytest.mark.parametrize(
    "smoke, paper",
    [("smoke_mars.yml", "USL_MTCluster.yml"), ("smoke_dukevideo.yml", "USL_MTCluster_Duke.yml")],
)
def test_smoke_presets_only_change_sizes(smoke, paper):
    s, p = setup_cfg(str(CONFIGS / smoke)), setup_cfg(str(CONFIGS / paper))
    changed = {k for k in all_keys(s) if value(s, k) != value(p, k)}
    assert changed <= SMOKE_MAY_CHANGE, changed - SMOKE_MAY_CHANGE
    assert s.SCALE == "smoke" and s.MODEL.LOSSES.ID_OPTION == p.MODEL.LOSSES.ID_OPTION


def test_base_is_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yml").write_text("OPTIM:\n  EPOCHS: 7\n  LR: 0.1\n")
    (tmp_path / "sub" / "child.yml").write_text("_BASE_: ../base.yml\nOPTIM:\n  EPOCHS: 3\n")
    cfg = setup_cfg(str(tmp_path / "sub" / "child.yml"), ["SEED", "5"])
    assert (cfg.OPTIM.EPOCHS, cfg.OPTIM.LR, cfg.SEED) == (3, 0.1, 5)


def test_unknown_key_from_the_command_line():
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'OPTIM.EPOCH' on the command line; did you mean "
        r"OPTIM.EPOCHS",
    ):
        setup_cfg(None, ["OPTIM.EPOCH", "3"])


def test_unknown_key_in_a_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("CLUSTER:\n  EPSILON: 0.5\n")
    with pytest.raises(ConfigError, match=rf"unknown config key 'CLUSTER.EPSILON' in {bad}"):
        setup_cfg(str(bad))


def test_type_mismatch_and_odd_overrides():
    with pytest.raises(ConfigError, match="Type mismatch.*OPTIM.EPOCHS"):
        setup_cfg(None, ["OPTIM.EPOCHS", "many"])
    with pytest.raises(ConfigError, match="odd number"):
        setup_cfg(None, ["OPTIM.EPOCHS"])


def test_unknown_key_is_one_line_from_the_script(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "examples/train.py",
            "--config-file",
            "configs/USL_MTCluster.yml",
            "OUTPUT_DIR",
            str(tmp_path),
            "CLUSTER.EPSS",
            "0.5",
        ],
        cwd=AUXUSL_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert lines[0].startswith(
        "error: unknown config key 'CLUSTER.EPSS' on the command line; did you mean CLUSTER.EPS"
    )
