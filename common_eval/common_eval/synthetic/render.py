"""Drawing of synthetic identities (people or vehicles) seen by synthetic cameras.

Everything is drawn with PIL on a 128x64 (HxW) canvas as a *label map* (one integer per body part),
coloured with numpy, then passed through the camera (blur, colour cast, brightness, noise).
The settings follow a calibration measured before the benchmark was built (see
common_eval/README.md, "Synthetic benchmark"): the camera look must stay weaker than
the identity look (cast <= +-0.12 per channel, brightness 0.75-1.15) and the figure fills the frame.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

H, W = 128, 64
JPEG_QUALITY = 90

# ---------------------------------------------------------------- palettes and domain settings
SATURATED = [  # domain a: 10 saturated hues
    (220, 30, 30), (245, 130, 20), (240, 215, 30), (40, 170, 50), (30, 195, 210),
    (35, 60, 220), (130, 40, 190), (225, 40, 160), (235, 235, 235), (25, 25, 25),
]
MUTED = [  # domain b: 7 muted hues, none of them close to a saturated one
    (120, 120, 70), (88, 98, 122), (122, 86, 60), (172, 156, 116), (78, 116, 108),
    (128, 70, 78), (142, 140, 136),
]
SKIN = [(255, 220, 185), (235, 190, 150), (200, 150, 110), (160, 110, 75), (110, 75, 50)]
HAIR = [(20, 15, 10), (70, 45, 25), (120, 80, 40), (200, 170, 100), (150, 150, 150), (110, 40, 20)]
BG_A = [(150, 150, 150), (190, 185, 170), (110, 120, 110), (170, 160, 140), (95, 100, 115),
        (205, 205, 200), (125, 110, 95), (140, 150, 160)]
BG_B = [(105, 100, 90), (140, 135, 120), (80, 85, 80), (160, 150, 135), (115, 120, 130),
        (90, 80, 70), (130, 125, 110), (70, 75, 85)]


@dataclass(frozen=True)
class Domain:
    """What differs between domain a and domain b (palette, backgrounds, camera strength)."""
    name: str
    palette: tuple
    bg_palette: tuple
    backgrounds: tuple
    cast: float
    brightness: tuple
    blur: tuple
    noise: tuple


DOMAINS = {
    # calibration "a_big": saturated palette, plain backgrounds, mild cameras, figure fills the frame
    "a": Domain("a", tuple(SATURATED), tuple(BG_A), ("flat", "gradient", "floor"),
                0.12, (0.75, 1.15), (0.0, 0.5), (1.0, 4.0)),
    # calibration "b_mild", made big: muted palette, textured backgrounds, mild cameras
    "b": Domain("b", tuple(MUTED), tuple(BG_B), ("noise", "bands", "tiles"),
                0.12, (0.75, 1.15), (0.2, 0.9), (2.0, 5.0)),
}

PATTERNS = ("solid", "solid", "hstripes", "vstripes", "checks", "logo")
BAGS = ("none", "none", "backpack", "shoulder")
VEHICLE_TYPES = ("sedan", "suv", "van", "truck", "bus")


def _jitter(rng, rgb, amount=12):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


# ---------------------------------------------------------------- identities and cameras
@dataclass(frozen=True)
class Person:
    """Appearance of one identity (fixed over all its images)."""
    height: float
    build: float
    skin: tuple
    hair: tuple
    long_hair: bool
    upper: tuple
    upper2: tuple
    pattern: str
    period: int
    long_sleeves: bool
    lower: tuple
    shorts: bool
    shoes: tuple
    bag: str
    bag_color: tuple
    stride: float
    swing: float


@dataclass(frozen=True)
class Vehicle:
    """Appearance of one vehicle identity (VeRi layout)."""
    vtype: str
    body: tuple
    roof: tuple
    stripe: str
    stripe_color: tuple
    glass: tuple
    lights: tuple
    rack: bool
    width: float


def sample_person(rng, domain: Domain) -> Person:
    pal = domain.palette
    upper = _jitter(rng, _pick(rng, pal))
    upper2 = _jitter(rng, _pick(rng, [c for c in pal if c != upper]))
    return Person(
        height=float(rng.uniform(0.88, 1.0)), build=float(rng.uniform(0.85, 1.15)),
        skin=_jitter(rng, _pick(rng, SKIN), 8), hair=_jitter(rng, _pick(rng, HAIR), 8),
        long_hair=bool(rng.random() < 0.3),
        upper=upper, upper2=upper2, pattern=_pick(rng, PATTERNS), period=int(rng.integers(4, 9)),
        long_sleeves=bool(rng.random() < 0.5),
        lower=_jitter(rng, _pick(rng, pal)), shorts=bool(rng.random() < 0.25),
        shoes=_jitter(rng, _pick(rng, list(pal) + HAIR[:2]), 10),
        bag=_pick(rng, BAGS), bag_color=_jitter(rng, _pick(rng, pal)),
        stride=float(rng.uniform(0.5, 1.0)), swing=float(rng.uniform(0.4, 1.0)),
    )


def sample_vehicle(rng, domain: Domain) -> Vehicle:
    pal = domain.palette
    body = _jitter(rng, _pick(rng, pal))
    roof = body if rng.random() < 0.6 else _jitter(rng, _pick(rng, pal))
    return Vehicle(
        vtype=_pick(rng, VEHICLE_TYPES), body=body, roof=roof,
        stripe=_pick(rng, ("none", "none", "hood", "side", "logo")),
        stripe_color=_jitter(rng, _pick(rng, [c for c in pal if c != body])),
        glass=_pick(rng, [(40, 50, 60), (90, 110, 130), (20, 20, 25)]),
        lights=_pick(rng, [(250, 250, 210), (255, 200, 80), (210, 230, 255)]),
        rack=bool(rng.random() < 0.25), width=float(rng.uniform(0.85, 1.0)),
    )


@dataclass
class Camera:
    """One camera: background, colour cast, brightness, blur, framing, view flips, noise."""
    background: np.ndarray  # H x (W + 32) x 3 float32, cropped at a random offset per image
    cast: np.ndarray        # per-channel gain, 1 +- domain.cast
    brightness: float
    blur: float
    scale: float
    dx: float
    dy: float
    flip_p: float
    noise: float
    rear: bool = False      # vehicles: this camera sees them from behind
    background_kind: str = ""


def _background(rng, kind: str, c1, c2) -> np.ndarray:
    h, w = H, W + 32
    c1 = np.asarray(c1, np.float32)
    c2 = np.asarray(c2, np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "flat":
        t = np.full((h, w), 0.15, np.float32)
    elif kind == "gradient":
        t = yy / (h - 1)
    elif kind == "floor":
        y0 = rng.uniform(0.55, 0.8) * h
        t = (yy > y0).astype(np.float32)
        t[np.abs(yy - y0) < 1.0] = 1.4  # the floor line, darker
    elif kind == "noise":
        small = rng.random((6, 8)).astype(np.float32)
        t = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC),
                       np.float32) / 255.0
    elif kind == "bands":
        widths = rng.integers(6, 18, size=20)
        edges = np.cumsum(widths)
        t = (np.searchsorted(edges, xx[0]) % 2).astype(np.float32)[None, :].repeat(h, 0)
    elif kind == "tiles":
        s = int(rng.integers(8, 17))
        t = (((yy // s) + (xx // s)) % 2).astype(np.float32) * 0.7
        t[(yy % s < 1) | (xx % s < 1)] = 1.3  # grout lines
    else:
        raise ValueError(f"unknown background type {kind!r}")
    img = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    return np.clip(img, 0, 255).astype(np.float32)


def sample_camera(rng, domain: Domain) -> Camera:
    c1 = _pick(rng, domain.bg_palette)
    c2 = _pick(rng, [c for c in domain.bg_palette if c != c1])
    kind = _pick(rng, domain.backgrounds)
    return Camera(
        background=_background(rng, kind, _jitter(rng, c1, 10), _jitter(rng, c2, 10)),
        cast=(1 + rng.uniform(-domain.cast, domain.cast, size=3)).astype(np.float32),
        brightness=float(rng.uniform(*domain.brightness)),
        blur=float(rng.uniform(*domain.blur)),
        scale=float(rng.uniform(0.92, 1.02)),
        dx=float(rng.uniform(-3, 3)), dy=float(rng.uniform(-3, 3)),
        flip_p=float(rng.uniform(0.0, 0.5)),
        noise=float(rng.uniform(*domain.noise)),
        rear=bool(rng.random() < 0.5),
        background_kind=kind,
    )


# ---------------------------------------------------------------- per-image state
@dataclass
class Pose:
    """Everything that varies from one image (or video frame) to the next."""
    phase: float = 0.0       # walking cycle, radians
    stride: float = 1.0      # multiplies the identity's stride
    swing: float = 1.0
    dx: float = 0.0          # pixels
    dy: float = 0.0
    scale: float = 1.0
    shade: tuple = (1.0, 1.0, 1.0)  # clothing shading factors (upper, lower, other)
    flip: bool = False
    occluder: tuple | None = None   # (side, extent 0..1, rgb)
    crop: tuple = (0, 0, 0, 0)      # pixels cut off left, top, right, bottom
    bg_offset: int = 0
    noise_seed: int = 0
    empty: bool = False      # junk: no figure at all


def random_pose(rng) -> Pose:
    """Independent per-image variation (still images)."""
    occ = None
    if rng.random() < 0.3:
        occ = (_pick(rng, ("left", "right", "bottom")), float(rng.uniform(0.15, 0.35)),
               _jitter(rng, _pick(rng, BG_A + BG_B + SATURATED[:8]), 20))
    return Pose(
        phase=float(rng.uniform(0, 2 * np.pi)), stride=float(rng.uniform(0.7, 1.3)),
        swing=float(rng.uniform(0.7, 1.3)),
        dx=float(rng.uniform(-3, 3)), dy=float(rng.uniform(-3, 3)),
        scale=float(rng.uniform(0.95, 1.05)),
        shade=tuple(float(s) for s in rng.uniform(0.9, 1.1, size=3)),
        occluder=occ,
        crop=(int(rng.integers(0, 6)), int(rng.integers(0, 9)), int(rng.integers(0, 6)),
              int(rng.integers(0, 9))),
        bg_offset=int(rng.integers(0, 33)), noise_seed=int(rng.integers(2**31)),
    )


def tracklet_poses(rng, n: int, flip: bool) -> list[Pose]:
    """n frames of one tracklet: walking cycle, slow drift, a steady occluder, small box jitter."""
    base = random_pose(rng)
    dphase = rng.uniform(0.6, 1.3)
    vx, vy, vs = rng.uniform(-0.4, 0.4), rng.uniform(-0.2, 0.2), rng.uniform(-0.006, 0.006)
    # an occluder (30 % of tracklets) covers a contiguous part of the tracklet
    occ_from, occ_to = 0, -1
    if base.occluder is not None:
        occ_from = int(rng.integers(0, n))
        occ_to = int(rng.integers(occ_from, n)) + 1
    poses = []
    for i in range(n):
        crop = tuple(int(np.clip(c + rng.integers(-1, 2), 0, 8)) for c in base.crop)
        poses.append(Pose(
            phase=float(base.phase + i * dphase), stride=base.stride, swing=base.swing,
            dx=float(np.clip(base.dx + i * vx, -6, 6)), dy=float(np.clip(base.dy + i * vy, -5, 5)),
            scale=float(np.clip(base.scale + i * vs, 0.9, 1.1)),
            shade=base.shade, flip=flip,
            occluder=base.occluder if occ_from <= i < occ_to else None,
            crop=crop, bg_offset=base.bg_offset, noise_seed=int(rng.integers(2**31)),
        ))
    return poses


# ---------------------------------------------------------------- drawing
# part labels of the label map
SKIN_, HAIR_, UPPER_, LOWER_, SHOES_, BAG_, LOGO_, GLASS_, LIGHT_, DARK_, BODY_, ROOF_, STRIPE_ = range(1, 14)


class _Pen:
    """Maps figure coordinates (u: -0.5..0.5 of figure height from the centre line, v: 0 top .. 1 feet)
    to pixels, with mirroring for view flips."""

    def __init__(self, draw, cx, top, size, flip):
        self.draw, self.cx, self.top, self.size, self.sign = draw, cx, top, size, (-1 if flip else 1)

    def p(self, u, v):
        return (self.cx + self.sign * u * self.size, self.top + v * self.size)

    def poly(self, pts, label):
        self.draw.polygon([self.p(u, v) for u, v in pts], fill=label)

    def rect(self, u0, v0, u1, v1, label):
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], label)

    def ellipse(self, u0, v0, u1, v1, label):
        (x0, y0), (x1, y1) = self.p(u0, v0), self.p(u1, v1)
        self.draw.ellipse([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=label)

    def line(self, pts, width, label):
        px = max(1, int(round(width * self.size)))
        self.draw.line([self.p(u, v) for u, v in pts], fill=label, width=px)


def _draw_person(pen: _Pen, p: Person, pose: Pose):
    b = p.build
    sh, hip = 0.15 * b, 0.115 * b            # half widths of shoulders and hips
    s = np.sin(pose.phase)
    stride = 0.07 * p.stride * pose.stride * s
    swing = 0.05 * p.swing * pose.swing * s
    # behind the body: backpack, long hair
    if p.bag == "backpack":
        pen.rect(-sh - 0.025, 0.17, sh + 0.025, 0.44, BAG_)
    if p.long_hair:
        pen.rect(-0.055, 0.04, 0.055, 0.2, HAIR_)
    # legs (hip to foot), lower garment, skin below the knee for shorts, shoes
    lw = 0.085 * b
    for side, st in ((-1, stride), (1, -stride)):
        hx, fx = side * hip * 0.55, side * hip * 0.55 + st
        lift = 0.02 * max(0.0, side * s)
        pen.line([(hx, 0.5), (fx, 0.955 - lift)], lw, LOWER_)
        if p.shorts:
            kx = (hx + fx) / 2
            pen.line([(kx, 0.72), (fx, 0.955 - lift)], lw * 0.8, SKIN_)
        pen.ellipse(fx - 0.05, 0.935 - lift, fx + 0.05, 0.99 - lift, SHOES_)
    pen.rect(-hip, 0.46, hip, 0.56, LOWER_)
    # arms (sleeve first, then forearm skin for short sleeves, then hand)
    aw = 0.055 * b
    for side, sw in ((-1, swing), (1, -swing)):
        shx = side * (sh - aw * 0.3)
        hand = (side * (sh + 0.02) + sw, 0.52 - 0.03 * abs(s))
        elbow = ((shx + hand[0]) / 2 + side * 0.01, 0.34)
        pen.line([(shx, 0.17), elbow], aw, UPPER_)
        pen.line([elbow, hand], aw * 0.9, UPPER_ if p.long_sleeves else SKIN_)
        pen.ellipse(hand[0] - 0.025, hand[1] - 0.02, hand[0] + 0.025, hand[1] + 0.03, SKIN_)
    # torso
    pen.poly([(-sh, 0.15), (sh, 0.15), (hip, 0.49), (-hip, 0.49)], UPPER_)
    if p.pattern == "logo":
        pen.rect(0.01, 0.22, 0.09 * b, 0.3, LOGO_)
    # bag straps / shoulder bag
    if p.bag == "backpack":
        pen.line([(-sh * 0.6, 0.15), (-sh * 0.6, 0.36)], 0.02, BAG_)
        pen.line([(sh * 0.6, 0.15), (sh * 0.6, 0.36)], 0.02, BAG_)
    elif p.bag == "shoulder":
        pen.line([(-sh * 0.8, 0.15), (hip * 0.9, 0.45)], 0.02, BAG_)
        pen.rect(hip * 0.6, 0.42, hip + 0.07, 0.54, BAG_)
    # neck, head, hair
    pen.rect(-0.025, 0.11, 0.025, 0.16, SKIN_)
    pen.ellipse(-0.055, 0.0, 0.055, 0.135, SKIN_)
    pen.ellipse(-0.058, -0.005, 0.058, 0.06, HAIR_)


def _draw_vehicle(pen: _Pen, v: Vehicle, pose: Pose, rear: bool):
    """A vehicle seen from above-front (or above-rear): roof, windscreen, bonnet, lights, wheels."""
    w = 0.3 * v.width
    roof_end = {"sedan": 0.34, "suv": 0.40, "van": 0.50, "truck": 0.30, "bus": 0.58}[v.vtype]
    bonnet = {"sedan": 0.25, "suv": 0.2, "van": 0.12, "truck": 0.22, "bus": 0.08}[v.vtype]
    glass_end = roof_end + 0.16
    nose = min(0.9, glass_end + bonnet)
    if v.vtype == "truck":  # cargo box behind the cab
        pen.rect(-w - 0.02, 0.0, w + 0.02, 0.2, ROOF_)
    pen.rect(-w * 0.85, 0.08 if v.vtype != "truck" else 0.2, w * 0.85, roof_end, ROOF_)
    if v.rack:
        for vv in np.linspace(0.12 if v.vtype != "truck" else 0.24, roof_end - 0.03, 4):
            pen.line([(-w * 0.7, vv), (w * 0.7, vv)], 0.012, DARK_)
    pen.poly([(-w * 0.85, roof_end), (w * 0.85, roof_end), (w, glass_end), (-w, glass_end)],
             DARK_ if rear else GLASS_)
    pen.rect(-w, glass_end, w, nose, BODY_)
    if v.stripe == "hood":
        pen.rect(-0.04, glass_end, 0.04, nose, STRIPE_)
    elif v.stripe == "side":
        pen.rect(-w, (glass_end + nose) / 2 - 0.02, w, (glass_end + nose) / 2 + 0.02, STRIPE_)
    elif v.stripe == "logo":
        pen.ellipse(0.03, glass_end + 0.03, 0.12, glass_end + 0.08, STRIPE_)
    pen.rect(-w - 0.01, nose, w + 0.01, 0.97, BODY_)  # front/rear face
    ly = nose + 0.02
    for side in (-1, 1):
        pen.rect(side * w * 0.92, ly, side * w * 0.55, ly + 0.05, SKIN_ if rear else LIGHT_)
        pen.rect(side * (w + 0.04), 0.8, side * (w - 0.05), 0.99, DARK_)  # wheels
    pen.rect(-0.06, 0.87, 0.06, 0.91, HAIR_)  # plate
    if not rear:
        pen.rect(-w * 0.45, ly, w * 0.45, ly + 0.05, DARK_)  # grille


def _colour_table(fig, pose: Pose) -> np.ndarray:
    t = np.zeros((16, 3), np.float32)
    su, sl, so = pose.shade
    if isinstance(fig, Person):
        t[SKIN_], t[HAIR_] = fig.skin, fig.hair
        t[UPPER_] = np.asarray(fig.upper) * su
        t[LOWER_] = np.asarray(fig.lower) * sl
        t[SHOES_], t[BAG_] = np.asarray(fig.shoes) * so, np.asarray(fig.bag_color) * so
        t[LOGO_] = np.asarray(fig.upper2) * su
    else:
        t[SKIN_] = (200, 30, 30)  # rear lights
        t[HAIR_] = (230, 230, 230)  # plate
        t[GLASS_], t[LIGHT_], t[DARK_] = fig.glass, fig.lights, (25, 25, 28)
        t[BODY_] = np.asarray(fig.body) * su
        t[ROOF_] = np.asarray(fig.roof) * sl
        t[STRIPE_] = np.asarray(fig.stripe_color) * su
    return np.clip(t, 0, 255)


_YY, _XX = np.mgrid[0:H, 0:W]


def _upper_texture(p: Person, x0: float, y0: float, size: float) -> np.ndarray | None:
    """Second-colour pattern of the upper garment, in body coordinates (moves with the figure)."""
    if p.pattern in ("solid", "logo"):
        return None
    per = p.period * size / 110.0
    yy, xx = (_YY - y0) / per, (_XX - x0) / per
    if p.pattern == "hstripes":
        m = (np.floor(yy) % 2) == 1
    elif p.pattern == "vstripes":
        m = (np.floor(xx) % 2) == 1
    else:
        m = ((np.floor(yy) + np.floor(xx)) % 2) == 1
    return m


def draw(fig, cam: Camera, pose: Pose) -> np.ndarray:
    """One image (H x W x 3 uint8) of a figure (Person or Vehicle, or None for background only)."""
    size = H * 0.94 * cam.scale * pose.scale * (fig.height if isinstance(fig, Person) else 1.0)
    cx = W / 2 + cam.dx + pose.dx
    top = H - 2 - size + cam.dy + pose.dy
    labels = Image.new("L", (W, H), 0)
    if fig is not None and not pose.empty:
        pen = _Pen(ImageDraw.Draw(labels), cx, top, size, pose.flip)
        if isinstance(fig, Person):
            _draw_person(pen, fig, pose)
        else:
            _draw_vehicle(pen, fig, pose, cam.rear)
    lab = np.asarray(labels)
    img = cam.background[:, pose.bg_offset:pose.bg_offset + W].copy()
    if fig is not None and not pose.empty:
        table = _colour_table(fig, pose)
        mask = lab > 0
        img[mask] = table[lab[mask]]
        if isinstance(fig, Person):
            tex = _upper_texture(fig, cx, top, size)
            if tex is not None:
                sel = (lab == UPPER_) & tex
                img[sel] = np.clip(np.asarray(fig.upper2, np.float32) * pose.shade[0], 0, 255)
        # soft side lighting so that figures are not perfectly flat
        light = 1.0 + 0.08 * np.clip((_XX - cx) / (0.2 * size), -1, 1) * (-1 if pose.flip else 1)
        img[mask] *= light[mask][:, None]
    if pose.occluder is not None:
        side, ext, rgb = pose.occluder
        if side == "left":
            img[:, :int(ext * W)] = rgb
        elif side == "right":
            img[:, W - int(ext * W):] = rgb
        else:
            img[H - int(ext * H):] = rgb
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    l, t, r, b = pose.crop
    if l or t or r or b:
        out = out.resize((W, H), Image.BILINEAR, box=(l, t, W - r, H - b))
    if cam.blur > 0.05:
        out = out.filter(ImageFilter.GaussianBlur(cam.blur))
    arr = np.asarray(out, np.float32) * (cam.cast * cam.brightness)[None, None]
    noise = np.random.default_rng(pose.noise_seed).standard_normal(arr.shape, dtype=np.float32)
    arr += noise * cam.noise
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)


def jpeg_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()
