"""The auxiliary-information files: written by ``make_aux``, read aligned by tracklet key.

Six ``.npz`` files (numpy archives, read with ``allow_pickle=False``), named after the
original's pickles and found through the same config keys (under PICKLE_PATH):

| file (config key)                                          | relation | split |
|---|---|---|
| cannotlink_pts.npz (CLUSTER.ICDBSCAN_CONSTRAINT_PATH)       | toc | train |
| cross_camera_relation_train.npz (CLUSTER.CCE_PATH)          | scp | train |
| spatio_temporal_relation_train.npz (CLUSTER.STR_PATH)       | sts | train |
| overlap_relation.npz (TEST.CONSTRAINT_PATH)                 | toc | infer |
| cross_camera_relation_infer.npz (TEST.CCE_PATH)             | scp | infer |
| spatio_temporal_relation_infer.npz (TEST.STR_PATH)          | sts | infer |

Every file holds ``format`` ("auxusl-aux-1"), ``relation``, ``split``, ``dataset``, ``mode`` and
``dense_step`` (how the training tracklets were cut), and the tracklet keys its rows and
columns are named by (``datasets.base.tracklet_key``: folder and first..last frame names):
``keys`` (train) or ``query_keys`` and ``gallery_keys`` (infer). Then:

- toc train: ``pairs`` (M x 2 int32, i < j): indices into ``keys`` of tracklets whose time
  intervals overlap on the common clock: the cannot-link pairs.
- toc infer: ``pairs`` (M x 2 int32): (query index, gallery index) of overlapping pairs.
- scp: ``cameras`` (train) or ``query_cameras`` / ``gallery_cameras`` (1-based, int8); the
  same-camera relation is SCP[i, j] = [camera_i == camera_j].
- sts: ``P`` (float32, N x N or Q x G): the plausibility p_ij (``sts.py``), plus the fitted
  model (``edges`` in seconds, ``table`` cams x cams x bins) for reference.

Loading aligns rows and columns to the dataset's own order by key and refuses a file whose
keys are not exactly the dataset's (missing or extra tracklets, another DENSE_STEP, another
dataset), or whose cameras disagree with the frame names: never a silent misalignment.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import AuxInfoError

FORMAT = "auxusl-aux-1"
FILES = {  # (relation, split) -> default file name (the original's stems)
    ("toc", "train"): "cannotlink_pts.npz",
    ("scp", "train"): "cross_camera_relation_train.npz",
    ("sts", "train"): "spatio_temporal_relation_train.npz",
    ("toc", "infer"): "overlap_relation.npz",
    ("scp", "infer"): "cross_camera_relation_infer.npz",
    ("sts", "infer"): "spatio_temporal_relation_infer.npz",
}


def save(path, relation: str, split: str, meta: dict, **arrays) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    fields = {
        "format": np.array(FORMAT),
        "relation": np.array(relation),
        "split": np.array(split),
        "dataset": np.array(meta["dataset"]),
        "mode": np.array(meta["mode"]),
        "dense_step": np.array(int(meta["dense_step"])),
    }
    np.savez_compressed(tmp, **fields, **arrays)
    tmp.replace(path)
    return path


class AuxFile:
    """One loaded file; ``regenerate`` is the command to print when it does not fit."""

    def __init__(self, path, relation: str, split: str, regenerate: str = ""):
        self.path = Path(path)
        self.regenerate = regenerate
        fix = f"; regenerate it with: {regenerate}" if regenerate else ""
        if not self.path.is_file():
            raise AuxInfoError(f"auxiliary-information file {self.path} does not exist{fix}")
        try:
            with np.load(self.path, allow_pickle=False) as data:
                self.data = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise AuxInfoError(
                f"{self.path} is not an auxusl auxiliary-information file ({type(exc).__name__}: {exc}). The "
                "original AuxUSL pickles are indexed by the authors' list order and cannot be aligned by "
                f"name{fix}"
            ) from None
        if str(self.data.get("format", "")) != FORMAT:
            raise AuxInfoError(f"{self.path} is not in the {FORMAT} format{fix}")
        got = (str(self.data["relation"]), str(self.data["split"]))
        if got != (relation, split):
            raise AuxInfoError(
                f"{self.path} holds the {got[0]} relation of the {got[1]} split, but it is "
                f"configured as the {relation} relation of the {split} split{fix}"
            )

    def align(self, stored_name: str, wanted: list[str], what: str) -> np.ndarray:
        """Positions in the file of the dataset's ``wanted`` keys; AuxInfoError unless the two
        key sets are the same."""
        stored = [str(k) for k in self.data[stored_name]]
        index = {k: i for i, k in enumerate(stored)}
        if len(index) != len(stored):
            raise AuxInfoError(f"{self.path}: {stored_name} holds duplicate keys")
        missing = [k for k in wanted if k not in index]
        extra = sorted(set(stored) - set(wanted))
        if missing or extra or len(set(wanted)) != len(wanted):
            parts = []
            if missing:
                parts.append(
                    f"{len(missing)} of the dataset's {len(wanted)} {what} are not in it (e.g. {missing[0]})"
                )
            if extra:
                parts.append(
                    f"{len(extra)} of its {len(stored)} keys are not in the dataset (e.g. {extra[0]})"
                )
            meta = (
                f"it was made for {self.data['dataset']} mode={self.data['mode']} "
                f"dense_step={int(self.data['dense_step'])}"
            )
            fix = f"; regenerate it with: {self.regenerate}" if self.regenerate else ""
            raise AuxInfoError(
                f"auxiliary information {self.path} does not match the dataset: "
                f"{'; '.join(parts)} ({meta}){fix}"
            )
        return np.asarray([index[k] for k in wanted], dtype=np.int64)

    def check_cameras(self, stored_name: str, pos: np.ndarray, cameras: np.ndarray, what: str) -> None:
        stored = np.asarray(self.data[stored_name], dtype=np.int64)[pos]
        bad = np.flatnonzero(stored != np.asarray(cameras, dtype=np.int64))
        if len(bad):
            raise AuxInfoError(
                f"auxiliary information {self.path} does not match the dataset: {len(bad)} "
                f"{what} have another camera in it (first: position {bad[0]})"
            )


# ------------------------------------------------------------------------------------- train
def load_cannotlinks(path, keys: list[str], regenerate: str = "") -> list[set]:
    """The cannot-link set of every training tracklet, in the order of ``keys``."""
    f = AuxFile(path, "toc", "train", regenerate)
    pos = f.align("keys", keys, "training tracklets")
    inverse = np.full(len(f.data["keys"]), -1, dtype=np.int64)
    inverse[pos] = np.arange(len(keys))
    sets: list[set] = [set() for _ in keys]
    for i, j in np.asarray(f.data["pairs"], dtype=np.int64).reshape(-1, 2):
        a, b = int(inverse[i]), int(inverse[j])
        sets[a].add(b)
        sets[b].add(a)
    return sets


def load_same_camera_train(path, keys: list[str], cameras=None, regenerate: str = "") -> np.ndarray:
    """N x N float32 0/1: the two training tracklets share a camera. ``cameras`` (1-based, the
    dataset's) are checked against the file's."""
    f = AuxFile(path, "scp", "train", regenerate)
    pos = f.align("keys", keys, "training tracklets")
    if cameras is not None:
        f.check_cameras("cameras", pos, cameras, "training tracklets")
    cams = np.asarray(f.data["cameras"], dtype=np.int64)[pos]
    return (cams[:, None] == cams[None, :]).astype(np.float32)


def load_sts_train(path, keys: list[str], regenerate: str = "") -> np.ndarray:
    f = AuxFile(path, "sts", "train", regenerate)
    pos = f.align("keys", keys, "training tracklets")
    return np.asarray(f.data["P"], dtype=np.float32)[np.ix_(pos, pos)]


# ------------------------------------------------------------------------------------- infer
def _align_infer(f: AuxFile, query_keys, gallery_keys):
    return (
        f.align("query_keys", query_keys, "query tracklets"),
        f.align("gallery_keys", gallery_keys, "gallery tracklets"),
    )


def load_overlap_infer(path, query_keys, gallery_keys, regenerate: str = "") -> np.ndarray:
    """Q x G float32 0/1: the query and gallery tracklets overlap in time."""
    f = AuxFile(path, "toc", "infer", regenerate)
    qp, gp = _align_infer(f, query_keys, gallery_keys)
    q_inv = np.full(len(f.data["query_keys"]), -1, dtype=np.int64)
    g_inv = np.full(len(f.data["gallery_keys"]), -1, dtype=np.int64)
    q_inv[qp] = np.arange(len(qp))
    g_inv[gp] = np.arange(len(gp))
    out = np.zeros((len(qp), len(gp)), dtype=np.float32)
    pairs = np.asarray(f.data["pairs"], dtype=np.int64).reshape(-1, 2)
    out[q_inv[pairs[:, 0]], g_inv[pairs[:, 1]]] = 1.0
    return out


def load_same_camera_infer(
    path, query_keys, gallery_keys, query_cameras=None, gallery_cameras=None, regenerate: str = ""
) -> np.ndarray:
    f = AuxFile(path, "scp", "infer", regenerate)
    qp, gp = _align_infer(f, query_keys, gallery_keys)
    if query_cameras is not None:
        f.check_cameras("query_cameras", qp, query_cameras, "query tracklets")
    if gallery_cameras is not None:
        f.check_cameras("gallery_cameras", gp, gallery_cameras, "gallery tracklets")
    qc = np.asarray(f.data["query_cameras"], dtype=np.int64)[qp]
    gc = np.asarray(f.data["gallery_cameras"], dtype=np.int64)[gp]
    return (qc[:, None] == gc[None, :]).astype(np.float32)


def load_sts_infer(path, query_keys, gallery_keys, regenerate: str = "") -> np.ndarray:
    f = AuxFile(path, "sts", "infer", regenerate)
    qp, gp = _align_infer(f, query_keys, gallery_keys)
    return np.asarray(f.data["P"], dtype=np.float32)[np.ix_(qp, gp)]
