"""``tdrl visualize pem``: paper Fig. 3 for one video and one trained checkpoint."""

from __future__ import annotations

import argparse

from tdrl.config.base import ConfigError, literal_values
from tdrl.config.data import DataConfig
from tdrl.viz.grid import save_figure
from tdrl.viz.loading import crop_sizes, load_model, read_clip
from tdrl.viz.pem import DEFAULT_BLOCK, TOP_K, build_pem_figure, pem_results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt of a PEM network, or its directory")
    parser.add_argument("--video", required=True, help="video file or folder of numbered frames")
    parser.add_argument("--block", action="append", default=None, metavar="layerK.I",
                        help=f"block(s) whose PEM to show; repeat for several (default: {DEFAULT_BLOCK}, the paper's)")
    parser.add_argument("--k", type=int, default=TOP_K, help="channels averaged in the top/bottom rows")
    add_clip_arguments(parser)
    parser.add_argument("--out", required=True, help="PNG to write")


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``visualize tm``: how the video is read and cropped."""
    parser.add_argument("--input-size", type=int, default=None,
                        help="crop size fed to the network (default: the checkpoint's data.input_size); the "
                             "network is fully convolutional, so a larger crop gives larger feature maps")
    parser.add_argument("--short-side", type=int, default=None,
                        help="shorter side before the centre crop (default: the checkpoint's data.short_side, "
                             "scaled with --input-size)")
    parser.add_argument("--decoder", default="auto", choices=literal_values(DataConfig, "decoder"),
                        help="video decoder (default: auto)")
    parser.add_argument("--dpi", type=int, default=100, help="PNG resolution (pixels per inch of the figure)")


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise ConfigError(f"--k {args.k} must be >= 1")
    loaded = load_model(args.checkpoint)
    input_size, short_side = crop_sizes(loaded.data_cfg, args.input_size, args.short_side)
    clip = read_clip(args.video, loaded.model_cfg.frames, input_size=input_size, short_side=short_side,
                     decoder=args.decoder)
    results = pem_results(loaded.model, clip.clip, args.block or [DEFAULT_BLOCK], k=args.k)
    k = results[0].selection.top.shape[-1]
    title = (f"PEM: top/bottom-{k} enhanced channels - {loaded.path.parent.name}/{loaded.path.name} "
             f"(epoch {loaded.epoch + 1}, {input_size} px)")
    fig = build_pem_figure(clip.frames, results, title=title, column_labels=[f"frame {i}" for i in clip.indices])
    out = save_figure(fig, args.out, dpi=args.dpi)
    for r in results:
        a = r.selection.a[0]  # (T, C)
        print(f"{r.block}: {a.shape[1]} channels, a in [{a.min():.3f}, {a.max():.3f}], "
              f"top-{k} per frame {r.selection.top[0].tolist()}")
    print(f"wrote {out}")
    return 0
