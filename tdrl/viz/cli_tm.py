"""``tdrl visualize tm``: paper Fig. 4, feature maps before/after TM for models with and without the TD loss."""

from __future__ import annotations

import argparse

from tdrl.config.base import ConfigError
from tdrl.config.model import ModelConfig
from tdrl.viz.cli_pem import add_clip_arguments
from tdrl.viz.grid import save_figure
from tdrl.viz.loading import crop_sizes, load_model, read_clip
from tdrl.viz.tm import DEFAULT_BLOCK, build_tm_figure, tm_result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="checkpoint of a model; give it twice (e.g. with and without the TD loss)")
    parser.add_argument("--label", action="append", default=None,
                        help="row label per checkpoint, in order (default: from the model's TD lambda)")
    parser.add_argument("--video", required=True, help="video file or folder of numbered frames")
    parser.add_argument("--block", default=DEFAULT_BLOCK, metavar="layerK.I",
                        help=f"block whose temporal module to show (default: {DEFAULT_BLOCK}, the paper's)")
    parser.add_argument("--td-ratio", type=float, default=None,
                        help="fraction of leading channels averaged and compared (default: the model's own "
                             "td_ratio, 0.5 if it has none)")
    add_clip_arguments(parser)
    parser.add_argument("--out", required=True, help="PNG to write")


def default_label(cfg: ModelConfig) -> str:
    """"w/ TD loss (lambda=...)" when the loss weighs in training, else "w/o TD loss"."""
    if cfg.td_trains:
        return f"w/ TD loss (λ={cfg.td_lambda:g})"
    return "w/o TD loss"


def run(args: argparse.Namespace) -> int:
    labels = args.label or []
    if labels and len(labels) != len(args.checkpoint):
        raise ConfigError(f"{len(labels)} --label for {len(args.checkpoint)} --checkpoint")
    if args.td_ratio is not None and not 0 < args.td_ratio <= 1:
        raise ConfigError(f"--td-ratio {args.td_ratio} must be in (0, 1]")
    loaded = [load_model(c) for c in args.checkpoint]
    frames = {m.model_cfg.frames for m in loaded}
    sizes = {(m.data_cfg.input_size, m.data_cfg.short_side) for m in loaded}
    # One clip feeds every model, so they must agree on T (and on the crop unless it is given).
    if len(frames) > 1 or (len(sizes) > 1 and args.input_size is None):
        raise ConfigError(f"the checkpoints need the same frames and input size to share one clip; got frames "
                         f"{sorted(frames)}, (input_size, short_side) {sorted(sizes)}; give --input-size")
    input_size, short_side = crop_sizes(loaded[0].data_cfg, args.input_size, args.short_side)
    clip = read_clip(args.video, frames.pop(), input_size=input_size, short_side=short_side, decoder=args.decoder)
    results = []
    for i, m in enumerate(loaded):
        label = labels[i] if labels else default_label(m.model_cfg)
        try:
            results.append(tm_result(m.model, clip.clip, label=label, block=args.block, td_ratio=args.td_ratio))
        except ValueError as exc:  # the block has no temporal module, or no channels to compare
            raise ConfigError(f"{m.path}: {exc}") from None
    title = (f"feature maps before/after TM (cos = mean cosine similarity between frames over the TD channels; "
             f"{input_size} px)")
    fig = build_tm_figure(clip.frames, results, title=title, column_labels=[f"frame {i}" for i in clip.indices])
    out = save_figure(fig, args.out, dpi=args.dpi)
    for r in results:
        print(f"{r.label}: {r.block} cos before TM {r.cos_before:.4f}, after TM {r.cos_after:.4f} "
              f"({r.channels} channels)")
    print(f"wrote {out}")
    return 0
