"""What to draw: identities, camera visits on a common clock, query/gallery choice, rendering jobs.

A *shot* is one still image or one tracklet. All randomness of a dataset is drawn here, from one
numpy Generator, in a fixed order; each shot carries its own seed for the drawing, so the files are
byte-identical for the same arguments.
"""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import render

FPS = 60            # the common clock counts frames at 60 fps (DukeMTMC's rate)
VIDEO_STEP = 12     # video frames are every 12th camera frame (0.2 s), as in DukeMTMC-VideoReID
PARALLEL_FRAMES = 20_000   # above this many frames, render_shots draws in one process per core
IMAGE_STEP = 120    # still images of one visit are about 120 frames apart (DukeMTMC-reID sampling)


@dataclass(eq=False)
class Shot:
    """One image (n == 1) or one tracklet (n frames) of one figure in one camera."""
    fig: int            # index into World.figs; -1 = no figure (junk background)
    pid: int            # identity label as written in the dataset (-1 junk, 0 distractor, ...)
    cam: int            # 1-based camera index
    t: int              # start on the common clock (frames at 60 fps)
    n: int = 1          # number of frames
    seed: int = 0
    kind: str = "id"    # "id", "distractor_box" (poorly framed stranger) or "junk"
    files: list = field(default_factory=list)  # output paths, filled in by the layout writer


@dataclass(frozen=True)
class Shape:
    """How many shots each identity gets. The defaults make the small benchmark; None = the layout
    writer's own default (see each writer). The real datasets' counts are reached with REAL_SHAPES
    in __init__.py."""
    cams_per_id: tuple = (2, 4)          # cameras an identity visits (inclusive range)
    per_cam: int | tuple = 3             # images per (identity, camera); cuhk03: per view
    test_per_cam: int | tuple | None = None   # the same for test identities (None: per_cam)
    tracklets_per_cam: tuple = (1, 2)    # video: tracklets per (identity, camera)
    frames: tuple = (6, 16)              # video: frames per tracklet
    distractors: float | None = None     # distractors per gallery item (duke*: identities per test id)
    junk: float | None = None            # junk (pid -1) images (tracklets) per gallery item
    max_query: int | None = None         # query shots per test identity (MARS default 2)

    def value(self, field: str, default):
        """The field, or the writer's ``default`` where it is None (0 is a value, not "unset")."""
        v = getattr(self, field)
        return default if v is None else v


class World:
    """The figures and cameras of one dataset, drawn from one Generator. shape: how many shots;
    dry: plan only (render_shots draws nothing: used to count a plan without writing images)."""

    def __init__(self, rng: np.random.Generator, domain: str, n_cams: int, vehicles: bool = False,
                 shape: Shape = Shape(), dry: bool = False):
        if domain not in render.DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; valid: {sorted(render.DOMAINS)}")
        self.rng = rng
        self.shape = shape
        self.dry = dry
        self.domain = render.DOMAINS[domain]
        self.vehicles = vehicles
        self.figs: list = []
        self.cams = {c: render.sample_camera(rng, self.domain) for c in range(1, n_cams + 1)}

    def new_figures(self, n: int) -> list[int]:
        sample = render.sample_vehicle if self.vehicles else render.sample_person
        start = len(self.figs)
        self.figs.extend(sample(self.rng, self.domain) for _ in range(n))
        return list(range(start, start + n))

    def seed(self) -> int:
        return int(self.rng.integers(2**62))


def choose_cameras(rng, n_ids: int, n_cams: int, lo: int = 2, hi: int = 4) -> list[list[int]]:
    """For each identity, a random set of lo..hi cameras; least-used cameras are preferred so that
    every camera is used once there are enough identities."""
    usage = np.zeros(n_cams)
    out = []
    for _ in range(n_ids):
        k = int(rng.integers(min(lo, n_cams), min(hi, n_cams) + 1))
        order = np.argsort(usage + rng.random(n_cams) * 1.5, kind="stable")[:k]
        usage[order] += 1
        out.append(sorted(int(c) + 1 for c in order))
    return out


def schedule(rng, visits: list[list[tuple[int, int]]], horizon: int) -> list[list[int]]:
    """Start times on the common clock. visits[i] = [(cam, duration), ...] of identity i, walked in a
    random order with gaps of 10-100 s between visits, starting uniformly in [0, horizon)."""
    starts = []
    for vis in visits:
        order = rng.permutation(len(vis))
        t = int(rng.integers(0, max(1, horizon)))
        st = [0] * len(vis)
        for j in order:
            st[j] = t
            t += vis[j][1] + int(rng.integers(10 * FPS, 100 * FPS))
        starts.append(st)
    return starts


def image_shots(world: World, figs: list[int], pids: list[int], cam_sets, per_cam,
                horizon: int) -> list[list[Shot]]:
    """Still images of each identity in each of its cameras (one visit per camera); per_cam is a
    count or an inclusive (lo, hi) range."""
    rng = world.rng
    lo, hi = (per_cam, per_cam) if isinstance(per_cam, int) else per_cam
    counts = [[int(rng.integers(lo, hi + 1)) for _ in cams] for cams in cam_sets]
    visits = [[(c, k * IMAGE_STEP * 2) for c, k in zip(cams, ks)] for cams, ks in zip(cam_sets, counts)]
    starts = schedule(rng, visits, horizon)
    out = []
    for fig, pid, vis, ks, st in zip(figs, pids, visits, counts, starts):
        shots = []
        for (cam, _), k, t in zip(vis, ks, st):
            for _ in range(k):
                shots.append(Shot(fig, int(pid), cam, t, 1, world.seed()))
                t += int(rng.integers(IMAGE_STEP // 2, IMAGE_STEP * 2))
        out.append(shots)
    return out


def tracklet_shots(world: World, figs: list[int], pids: list[int], cam_sets, horizon: int,
                   per_cam=None, frames=None) -> list[list[Shot]]:
    """per_cam tracklets of `frames` frames per (identity, camera) (default: the world's shape, 1-2
    of 6-16); same-identity tracklets never overlap."""
    rng = world.rng
    per_cam = world.shape.tracklets_per_cam if per_cam is None else per_cam
    frames = world.shape.frames if frames is None else frames
    visits = []
    for cams in cam_sets:
        vis = []
        for c in cams:
            for _ in range(int(rng.integers(per_cam[0], per_cam[1] + 1))):
                n = int(rng.integers(frames[0], frames[1] + 1))
                vis.append((c, n))
        visits.append(vis)
    starts = schedule(rng, [[(c, n * VIDEO_STEP) for c, n in vis] for vis in visits], horizon)
    out = []
    for fig, pid, vis, st in zip(figs, pids, visits, starts):
        out.append([Shot(fig, int(pid), c, t, n, world.seed()) for (c, n), t in zip(vis, st)])
    return out


def split_query(rng, shots: list[Shot], max_q: int | None = None) -> tuple[list[Shot], list[Shot]]:
    """Query = one shot per camera of an identity (at most max_q), taken while every query keeps a
    gallery shot of the same identity in another camera; gallery = the rest."""
    by_cam: dict[int, list[Shot]] = {}
    for s in shots:
        by_cam.setdefault(s.cam, []).append(s)
    query: list[Shot] = []
    for cam in rng.permutation(sorted(by_cam)):
        cand = by_cam[int(cam)][int(rng.integers(len(by_cam[int(cam)])))]
        trial = query + [cand]
        gallery = [s for s in shots if s not in trial]
        if all(any(g.cam != q.cam for g in gallery) for q in trial):
            query = trial
        if max_q is not None and len(query) >= max_q:
            break
    return query, [s for s in shots if s not in query]


def _render_shot(args):
    fig, cam, shot_seed, n, kind, files, extra_crop = args
    rng = np.random.default_rng(shot_seed)
    if n == 1:
        poses = [render.random_pose(rng)]
        poses[0].flip = bool(rng.random() < cam.flip_p)
    else:
        poses = render.tracklet_poses(rng, n, bool(rng.random() < cam.flip_p))
    dx, dy, scale = 0.0, 0.0, 1.0
    if kind == "junk":               # a badly placed box: empty, or a zoomed fragment of someone
        dx, dy, scale = rng.uniform(-25, 25), rng.uniform(-20, 70), rng.uniform(1.5, 2.2)
    elif kind == "distractor_box":   # someone who is not a test identity, poorly framed
        dx, scale = rng.choice([-1, 1]) * rng.uniform(10, 20), rng.uniform(0.75, 1.3)
    imgs = []
    for pose, path in zip(poses, files):
        pose.empty = kind == "junk" and fig is None
        pose.dx, pose.dy, pose.scale = pose.dx + float(dx), pose.dy + float(dy), pose.scale * float(scale)
        if extra_crop:
            pose.crop = tuple(c + int(rng.integers(0, extra_crop + 1)) for c in pose.crop)
        img = render.draw(fig, cam, pose)
        imgs.append(img)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(render.jpeg_bytes(img))
    return imgs


def render_shots(world: World, shots: list[Shot], *, extra_crop: int = 0, keep: bool = False):
    """Draw every shot; frames are written as JPEG to shot.files (when set).
    keep=True returns the frames (one list of uint8 arrays per shot)."""
    if world.dry:   # a plan only: blank frames where the caller keeps them
        blank = np.zeros((render.H, render.W, 3), np.uint8)
        return [[blank] * s.n for s in shots] if keep else None
    jobs = [(world.figs[s.fig] if s.fig >= 0 else None, world.cams[s.cam], s.seed, s.n, s.kind,
             list(s.files) if s.files else [None] * s.n, extra_crop) for s in shots]
    workers = min(os.cpu_count() or 1, 16)
    if keep or workers == 1 or sum(s.n for s in shots) < PARALLEL_FRAMES:
        out = [_render_shot(job) for job in jobs]
        return out if keep else None
    # large datasets (counts="real"): every shot has its own seed, so the files do not depend on
    # which process draws them
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for _ in pool.imap_unordered(_render_shot, jobs, chunksize=64):
            pass
    return None


# Per-camera start of each camera's video on the common clock (DukeMTMC's published offsets for
# cameras 1-8): camera-local frame number = t - DUKE_START[cam] + 1, and t >= max(DUKE_START).
DUKE_START = {1: 5543, 2: 3607, 3: 27244, 4: 31182, 5: 1, 6: 22402, 7: 18968, 8: 46766, 9: 1}
CLOCK_ORIGIN = 46766


def sample_pids(rng, n: int, hi: int) -> np.ndarray:
    """n distinct pids from 1..max(hi, n), in random order (loaders must relabel); hi is the
    dataset's largest real pid, which real-size datasets (n close to hi) must not exceed."""
    return rng.choice(np.arange(1, max(hi, n) + 1), size=n, replace=False)


def split_all(rng, per_id_shots: list[list[Shot]], max_q: int | None = None):
    """split_query for every identity; returns (query, gallery) lists."""
    query, gallery = [], []
    for shots in per_id_shots:
        q, g = split_query(rng, shots, max_q)
        query += q
        gallery += g
    return query, gallery


def summary(shots: list[Shot], unit: str = "images") -> dict:
    """Statistics as a loader reports them: pid -1 (junk) dropped, pid 0 counted as one id."""
    kept = [s for s in shots if s.pid != -1]
    d = {"ids": len({s.pid for s in kept}), unit: len(kept), "cams": len({s.cam for s in kept})}
    if unit == "tracklets":
        d["frames"] = sum(s.n for s in kept)
    junk = len(shots) - len(kept)
    if junk:
        d["junk"] = junk
    return d
