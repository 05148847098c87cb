"""A Something-Something-like synthetic benchmark whose classes need temporal order.

Classes come in time-reversed pairs (left->right / right->left, up / down, approaching / moving
away, appearing / disappearing, clockwise / anticlockwise, ...). Every clip is rendered "forward"
from parameters drawn independently of the class - textured background, static distractor shapes,
object shape, colour, size, path, per-frame sensor noise - and the second class of a pair is the
forward clip played backwards. So a pair's two classes are, in distribution, exactly each other's
frame reversal: the class is defined by direction only, the multiset of frames carries no class
information inside a pair, and a frame-order-blind model (TSN) can at best tell the pairs apart
(chance 1/2 within a pair).

Difficulty knobs (all off by default, so the default sets are unchanged; the ``bench`` preset turns
them on, docs/results.md says from which calibration runs):

- ``motion_scale``: the fraction of the full motion shown (travel length, turn, growth, fade and
  brightness ranges shrink around the path's middle);
- ``motion_window``: the motion happens in a window of this fraction of the clip, at a random time;
  the object rests before and after it;
- ``moving_distractors``: shapes that drift across the scene in uniformly random directions (time
  reversal maps that distribution onto itself, so they carry no class information);
- ``occluders``: static opaque bars drawn in front of everything;
- ``jitter``: camera shake, an i.i.d. per-frame translation with this standard deviation in pixels.

The knobs draw from their own random stream (``(seed, clip, 1)``), so turning one on never changes
the rest of a clip's scene.

Output is the official V2 layout - ``something-something-v2-{labels,train,validation}.json``
and ``<id>.webm`` (VP9, PyAV) - so training reads it through exactly the V2 code path.
Clips are deterministic per ``(seed, clip index)`` whatever the number of worker processes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from tdrl.config.base import ConfigError
from tdrl.data.annotations import V2_DEFAULTS

MARKER = "_SYNTH_COMPLETE.json"
FORMAT_VERSION = 1  # bump when rendering changes, so old markers stop matching

# (forward template, reversed template, motion kind). The reversed class is the forward clip reversed.
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("Moving [something] from left to right", "Moving [something] from right to left", "horizontal"),
    ("Moving [something] down", "Moving [something] up", "vertical"),
    ("Approaching [something]", "Moving away from [something]", "scale"),
    ("[Something] appearing", "[Something] disappearing", "alpha"),
    ("Turning [something] clockwise", "Turning [something] anticlockwise", "rotation"),
    ("Moving [something] diagonally down and right", "Moving [something] diagonally up and left", "diagonal"),
    ("[Something] lighting up", "[Something] dimming", "brightness"),
)
SHAPES = ("circle", "square", "triangle", "bar")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 80, 230), "yellow": (235, 220, 40),
           "magenta": (210, 50, 200), "cyan": (40, 210, 220), "white": (240, 240, 240), "orange": (245, 140, 20)}


@dataclass(frozen=True)
class SynthParams:
    """Everything that decides the generated files (compared with the completion marker)."""

    num_classes: int = 10
    train_per_class: int = 40
    val_per_class: int = 10
    frames: int = 16
    size: int = 112
    seed: int = 0
    fps: int = 12
    crf: int = 30
    version: int = FORMAT_VERSION
    motion_scale: float = 1.0
    motion_window: float = 1.0
    moving_distractors: int = 0
    occluders: int = 0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.motion_scale <= 1.0 or not 0.0 < self.motion_window <= 1.0:
            raise ValueError(f"motion_scale={self.motion_scale} and motion_window={self.motion_window} must be "
                             f"in (0, 1]")
        if self.moving_distractors < 0 or self.occluders < 0 or not 0.0 <= self.jitter <= self.size / 8:
            raise ValueError(f"moving_distractors={self.moving_distractors} and occluders={self.occluders} must be "
                             f">= 0 and jitter={self.jitter} between 0 and size/8")
        if self.num_classes < 2 or self.num_classes % 2 or self.num_classes > 2 * len(PAIRS):
            raise ValueError(f"num_classes={self.num_classes}: must be even (reversed pairs) and "
                             f"between 2 and {2 * len(PAIRS)}")
        if self.frames < 2 or self.size < 16 or self.size % 2:
            raise ValueError(f"frames={self.frames} must be >= 2 and size={self.size} even and >= 16")
        if self.train_per_class < 1 or self.val_per_class < 0:
            raise ValueError("train_per_class must be >= 1 and val_per_class >= 0")


@dataclass(frozen=True)
class SynthInfo:
    """Where a generated set lives; :meth:`data_fields` plugs into ``DataConfig``."""

    root: str
    labels: str
    train: str
    validation: str
    classes: tuple[str, ...]
    params: SynthParams
    generated: bool  # False when an existing complete set was reused

    def data_fields(self) -> dict[str, Any]:
        return {"dataset": "sthv2", "root": self.root, "video_dir": "", "video_ext": ".webm",
                "labels": self.labels, "train_annotations": self.train, "val_annotations": self.validation}


def class_names(num_classes: int) -> list[str]:
    """Templates (with ``[something]``) of the first ``num_classes`` classes: pair p -> 2p, 2p+1."""
    return [PAIRS[c // 2][c % 2] for c in range(num_classes)]


def _clip_rng(seed: int, clip: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, clip]))


def draw_params(rng: np.random.Generator, kind: str, size: int) -> dict[str, Any]:
    """The clip's scene; drawn the same way for both directions of a pair."""
    s = float(size)
    shapes = SHAPES[1:] if kind == "rotation" else SHAPES  # a circle shows no rotation
    colour_name = list(COLOURS)[rng.integers(len(COLOURS))]
    p: dict[str, Any] = {
        "kind": kind,
        "bg_lowres": rng.uniform(40, 200, size=(5, 5, 3)),
        "bg_noise": rng.normal(0, 12, size=(size, size, 1)) + rng.normal(0, 4, size=(size, size, 3)),
        "distractors": [(SHAPES[rng.integers(len(SHAPES))], rng.uniform(0.1, 0.9, 2) * s,
                         rng.uniform(0.05, 0.1) * s, rng.uniform(0, np.pi), rng.uniform(30, 230, 3))
                        for _ in range(rng.integers(1, 4))],
        "shape": shapes[rng.integers(len(shapes))],
        "colour_name": colour_name,
        "colour": np.array(COLOURS[colour_name], float) + rng.uniform(-15, 15, 3),
        "radius": rng.uniform(0.1, 0.16) * s,
        "centre": rng.uniform(0.3, 0.7, 2) * s,  # (x, y) where the motion is centred
        "extent": rng.uniform(0.3, 0.5) * s,  # travel length
        "angle0": rng.uniform(0, 2 * np.pi),
        "turn": rng.uniform(np.pi / 3, 2 * np.pi / 3),
        "growth": rng.uniform(2.0, 3.0),
        "sensor_seed": int(rng.integers(2**31)),
    }
    return p


KNOBS = ("motion_scale", "motion_window", "moving_distractors", "occluders", "jitter")


def _hard_on(params: "SynthParams") -> bool:
    return (params.motion_scale, params.motion_window, params.moving_distractors, params.occluders,
            params.jitter) != (1.0, 1.0, 0, 0, 0.0)


def draw_hard(rng: np.random.Generator, params: "SynthParams", frames: int) -> dict[str, Any]:
    """The difficulty draws of one clip (its own stream: the scene of ``draw_params`` is unchanged)."""
    s = float(params.size)
    angles = rng.uniform(0, 2 * np.pi, params.moving_distractors)  # isotropic: reversal-symmetric
    return {
        "window_start": rng.uniform(0.0, 1.0 - params.motion_window),
        "motion_window": params.motion_window,
        "motion_scale": params.motion_scale,
        "movers": [(SHAPES[rng.integers(len(SHAPES))], rng.uniform(0.15, 0.85, 2) * s,
                    rng.uniform(0.2, 0.5) * s * np.array([np.cos(a), np.sin(a)]), rng.uniform(0.06, 0.11) * s,
                    rng.uniform(0, np.pi), rng.uniform(30, 230, 3)) for a in angles],
        "occluders": [(rng.uniform(0.0, 0.8, 2) * s, rng.uniform(0.08, 0.2) * s, rng.uniform(0.25, 0.6) * s,
                       bool(rng.integers(2)), rng.uniform(30, 230, 3)) for _ in range(params.occluders)],
        "jitter": np.rint(rng.normal(0.0, params.jitter, size=(frames, 2))).astype(int) if params.jitter else None,
    }


def _progress(frames: int, p: dict[str, Any]) -> np.ndarray:
    """Forward progress in [0, 1] per frame ``(T, 1, 1)``, after the motion window and scale knobs."""
    t = np.linspace(0.0, 1.0, frames)[:, None, None]
    window = p.get("motion_window", 1.0)
    if window < 1.0:
        t = np.clip((t - p["window_start"]) / window, 0.0, 1.0)
    scale = p.get("motion_scale", 1.0)
    if scale != 1.0:
        t = 0.5 + (t - 0.5) * scale
    return t


def _paint(video: np.ndarray, cov: np.ndarray, colour: Any) -> np.ndarray:
    """Alpha-blend ``colour`` over ``video`` with coverage ``cov`` (broadcastable, no channel axis)."""
    return video * (1 - cov[..., None]) + np.asarray(colour) * cov[..., None]


def _shake(video: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Translate frame t by ``offsets[t] = (dy, dx)`` pixels, repeating the edge pixels."""
    pad = int(np.abs(offsets).max()) if offsets.size else 0
    if pad == 0:
        return video
    size_y, size_x = video.shape[1:3]
    padded = np.pad(video, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return np.stack([padded[t, pad - dy:pad - dy + size_y, pad - dx:pad - dx + size_x]
                     for t, (dy, dx) in enumerate(offsets)])


def _signed_distance(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Positive inside, in pixels; ``u, v`` object-frame coordinates, ``r`` broadcastable size."""
    if shape == "circle":
        return r - np.sqrt(u * u + v * v)
    if shape == "square":
        return 0.85 * r - np.maximum(np.abs(u), np.abs(v))
    if shape == "bar":
        return np.minimum(r - np.abs(u), 0.35 * r - np.abs(v))
    if shape == "triangle":
        d = None
        for k in range(3):  # three half-planes with outward normals 120 degrees apart
            a = -np.pi / 2 + k * 2 * np.pi / 3
            dk = 0.5 * r - (u * np.cos(a) + v * np.sin(a))
            d = dk if d is None else np.minimum(d, dk)
        return d  # type: ignore[return-value]
    raise ValueError(f"unknown shape {shape!r}")


def _coverage(shape: str, xx: np.ndarray, yy: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray,
              ang: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1]; all per-frame arrays ``(T, 1, 1)`` against ``(H, W)`` grids."""
    dx, dy = xx - cx, yy - cy
    c, s = np.cos(ang), np.sin(ang)
    u, v = c * dx + s * dy, -s * dx + c * dy
    return np.clip(_signed_distance(shape, u, v, r) + 0.5, 0.0, 1.0)


def render_forward(p: dict[str, Any], frames: int, size: int) -> np.ndarray:
    """The forward-direction clip of scene ``p`` -> ``(T, H, W, 3)`` uint8, all frames at once."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # (H, W) pixel centres
    # Background: smooth colour field (upsampled 5x5) + fixed fine texture, static over time.
    import torch  # only for a quick bilinear upsample of the 5x5 field
    low = torch.from_numpy(p["bg_lowres"].transpose(2, 0, 1)[None]).float()
    bg = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    bg = bg[0].permute(1, 2, 0).double().numpy() + p["bg_noise"]  # (H, W, 3)
    for shape, (dx, dy), rad, ang, col in p["distractors"]:  # static: no class information
        cov = _coverage(shape, xx, yy, np.array(dx), np.array(dy), np.array(rad), np.array(ang))
        bg = _paint(bg, cov, col)
    scene = np.broadcast_to(bg, (frames, size, size, 3))  # (T, H, W, 3)
    lin = np.linspace(0.0, 1.0, frames)[:, None, None]
    for shape, (x0, y0), (vx, vy), rad, ang, col in p.get("movers", ()):  # drifting distractors
        cov = _coverage(shape, xx, yy, x0 + (lin - 0.5) * vx, y0 + (lin - 0.5) * vy, np.array(rad), np.array(ang))
        scene = _paint(scene, cov, col)

    t = _progress(frames, p)  # (T, 1, 1) forward progress
    kind, (cx0, cy0), ext, r0 = p["kind"], p["centre"], p["extent"], p["radius"]
    cx = np.full_like(t, cx0)
    cy = np.full_like(t, cy0)
    r = np.full_like(t, r0)
    ang = np.full_like(t, p["angle0"])
    alpha = np.ones_like(t)
    colour = np.broadcast_to(p["colour"], (frames, 1, 1, 3)).copy()
    if kind == "horizontal":
        cx = cx0 + (t - 0.5) * ext * 1.4
    elif kind == "vertical":
        cy = cy0 + (t - 0.5) * ext * 1.4
    elif kind == "diagonal":
        cx = cx0 + (t - 0.5) * ext
        cy = cy0 + (t - 0.5) * ext
    elif kind == "scale":
        r = r0 * 0.6 * p["growth"] ** t
    elif kind == "alpha":
        alpha = np.clip(t * 1.2 - 0.1, 0.0, 1.0)
    elif kind == "rotation":
        ang = p["angle0"] + t * p["turn"]  # increasing angle = clockwise on screen (y points down)
    elif kind == "brightness":
        colour = colour * (0.25 + 0.85 * t[..., None])
    else:
        raise ValueError(f"unknown motion kind {kind!r}")
    cov = _coverage(p["shape"], xx, yy, cx, cy, r, ang) * alpha  # (T, H, W)
    cov = cov[..., None]
    video = scene * (1 - cov) + colour * cov  # (T, H, W, 3)
    for (x0, y0), w, h, upright, col in p.get("occluders", ()):  # static, in front of everything
        if upright:
            w, h = h, w
        inside = (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
        video = _paint(video, inside.astype(float)[None], col)
    if p.get("jitter") is not None:
        video = _shake(video, p["jitter"])
    video += np.random.default_rng(p["sensor_seed"]).normal(0, 2.0, size=video.shape)  # i.i.d. per frame
    return np.clip(video + 0.5, 0, 255).astype(np.uint8)


def render_clip(class_index: int, p: dict[str, Any], frames: int, size: int) -> np.ndarray:
    """Class ``2k`` = forward clip of pair k, class ``2k+1`` = the same clip time-reversed."""
    video = render_forward(p, frames, size)
    return np.ascontiguousarray(video[::-1]) if class_index % 2 else video


def clip_spec(params: SynthParams, clip: int) -> tuple[int, dict[str, Any]]:
    """Class and scene of global clip number ``clip`` (train clips first, then validation)."""
    cls = clip % params.num_classes
    rng = _clip_rng(params.seed, clip)
    scene = draw_params(rng, PAIRS[cls // 2][2], params.size)
    if _hard_on(params):
        hard_rng = np.random.default_rng(np.random.SeedSequence([params.seed, clip, 1]))
        scene.update(draw_hard(hard_rng, params, params.frames))
    return cls, scene


def encode_webm(video: np.ndarray, path: Path, fps: int = 12, crf: int = 30) -> None:
    """``(T, H, W, 3)`` uint8 -> VP9 WebM at ``path`` (written to a temp name, then renamed)."""
    import av  # PyAV: imported by the generator's workers, not on `tdrl synth --help`'s path

    tmp = path.with_name(path.name + ".part")
    # bitexact: no random segment UID / date in the header, so the same seed gives the same bytes.
    with av.open(str(tmp), "w", format="webm", container_options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("libvpx-vp9", rate=fps)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        # Realtime speed settings: ~10x faster than the default 'good' deadline at these sizes;
        # one thread keeps the output bit-exact across machines and avoids oversubscription.
        stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": str(crf), "b:v": "0"}
        stream.thread_count = 1
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)


def _make_clips(params: SynthParams, out_dir: str, clips: list[int]) -> list[dict[str, Any]]:
    entries = []
    for clip in clips:
        cls, p = clip_spec(params, clip)
        video = render_clip(cls, p, params.frames, params.size)
        encode_webm(video, Path(out_dir) / f"{clip + 1}.webm", params.fps, params.crf)
        template = class_names(params.num_classes)[cls]
        thing = f"{p['colour_name']} {p['shape']}"
        label = template.replace("[something]", thing).replace("[Something]", thing)
        entries.append({"id": str(clip + 1), "label": label[0].lower() + label[1:], "template": template,
                        "placeholders": [thing]})
    return entries


def generate_synthetic(out_dir: str | Path, *, num_classes: int = 10, train_per_class: int = 40,
                       val_per_class: int = 10, frames: int = 16, size: int = 112, seed: int = 0,
                       workers: int | None = None, force: bool = False, **knobs: Any) -> SynthInfo:
    """Write the synthetic set into ``out_dir`` (skipped if a complete set with the same parameters is there).

    Returns the paths; ``DataConfig(**info.data_fields())`` reads it. ``workers`` processes encode in
    parallel (default: all CPU cores); the files do not depend on it. ``knobs`` are the difficulty
    fields of :class:`SynthParams` (``motion_scale``, ``motion_window``, ``moving_distractors``,
    ``occluders``, ``jitter``).
    """
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise ValueError(f"unknown synthetic-set option(s) {', '.join(sorted(unknown))}; known: {', '.join(KNOBS)}")
    params = SynthParams(num_classes, train_per_class, val_per_class, frames, size, seed, **knobs)
    out = Path(out_dir).resolve()  # absolute, so the paths survive being joined with a config root
    names = {k: str(out / v) for k, v in V2_DEFAULTS.items()}
    classes = tuple(t.replace("[", "").replace("]", "") for t in class_names(num_classes))
    marker = out / MARKER
    if not force and marker.is_file():
        try:
            if json.loads(marker.read_text())["params"] == asdict(params):
                return SynthInfo(str(out), names["labels"], names["train"], names["val"], classes, params, False)
        except (json.JSONDecodeError, KeyError):
            pass
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)  # incomplete until the end, whatever was there before
    n_train = train_per_class * num_classes
    total = n_train + val_per_class * num_classes
    workers = workers or os.cpu_count() or 1
    chunks = [list(range(i, total, max(1, workers * 4))) for i in range(max(1, workers * 4))]
    chunks = [c for c in chunks if c]
    t0 = time.time()
    if workers == 1:
        results = [_make_clips(params, str(out), c) for c in chunks]
    else:
        # spawn: the caller may be a training process with torch/Ray threads that fork would copy badly.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_make_clips, [params] * len(chunks), [str(out)] * len(chunks), chunks))
    entries = sorted((e for r in results for e in r), key=lambda e: int(e["id"]))
    labels = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(class_names(num_classes))}
    Path(names["labels"]).write_text(json.dumps(labels, indent=1))
    Path(names["train"]).write_text(json.dumps(entries[:n_train], indent=1))
    Path(names["val"]).write_text(json.dumps(entries[n_train:], indent=1))
    marker.write_text(json.dumps({"params": asdict(params), "seconds": round(time.time() - t0, 2),
                                  "workers": workers, "clips": total}, indent=1))
    return SynthInfo(str(out), names["labels"], names["train"], names["val"], classes, params, True)


# --- the `tdrl synth` command ---------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SynthParams()
    parser.add_argument("--out", default="data/synth", help="output directory (default: data/synth)")
    parser.add_argument("--num-classes", type=int, default=d.num_classes,
                        help=f"number of classes, even, <= {2 * len(PAIRS)} (default: {d.num_classes})")
    parser.add_argument("--train-per-class", type=int, default=d.train_per_class, help="training clips per class")
    parser.add_argument("--val-per-class", type=int, default=d.val_per_class, help="validation clips per class")
    parser.add_argument("--frames", type=int, default=d.frames, help="frames per clip")
    parser.add_argument("--size", type=int, default=d.size, help="frame height and width in pixels (even)")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed (same seed = same files)")
    parser.add_argument("--processes", type=int, default=None, help="encoding processes (default: all cores)")
    # Deprecated spellings from before the CLI used one name per meaning (tdrl.cli's docstring: --workers
    # is Ray Train workers everywhere else); hidden from --help, kept so old scripts still run.
    parser.add_argument("--classes", dest="num_classes", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--workers", dest="processes", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help="regenerate even if a complete set exists")
    hard = parser.add_argument_group("difficulty (module docstring of tdrl.data.synthetic; all off by default)")
    hard.add_argument("--motion-scale", type=float, default=d.motion_scale, help="fraction of the full motion shown")
    hard.add_argument("--motion-window", type=float, default=d.motion_window,
                      help="fraction of the clip during which the object moves")
    hard.add_argument("--moving-distractors", type=int, default=d.moving_distractors,
                      help="shapes drifting in random directions")
    hard.add_argument("--occluders", type=int, default=d.occluders, help="static bars in front of the scene")
    hard.add_argument("--jitter", type=float, default=d.jitter, help="camera shake, std of the per-frame shift in px")


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    try:
        info = generate_synthetic(args.out, num_classes=args.num_classes, train_per_class=args.train_per_class,
                                  val_per_class=args.val_per_class, frames=args.frames, size=args.size,
                                  seed=args.seed, workers=args.processes, force=args.force,
                                  **{k: getattr(args, k) for k in KNOBS})
    except ValueError as exc:  # a bad parameter: tdrl.cli prints "tdrl synth: error: ..." on stderr, exit 2
        raise ConfigError(str(exc)) from exc
    what = "generated" if info.generated else "already complete, reused"
    print(f"{info.root}: {what} in {time.time() - t0:.1f}s; {len(info.classes)} classes, "
          f"labels {info.labels}, train {info.train}, validation {info.validation}")
    return 0
