"""A network's training speed (clips/s per GPU) on a GPU, from the rates measured on another one.

What is measured (``benchmarks/throughput.py --json``, kept in ``benchmarks/results/``): the training
step of ``tsn``, ``tsm``, ``tim`` and ``tdrl`` (TIM + PEM + TD loss) on one GPU model (an H200), at
8 and 16 frames. Everything else is estimated, and the plan prints how:

**Another network** (:func:`reference_seconds`). A clip's step time adds up over the parts: the
temporal module's row (``tsn``/``tsm``/``tim``) plus, for PEM (or MEM) and/or the TD loss, what they
add to TIM as measured together, ``t(tdrl) - t(tim)``. PEM and the TD loss were not timed apart, so a
network with only one of them gets both: an upper bound on its time (MEM is timed as PEM).

**Another GPU** (:func:`gpu_factor`). The measured step is split into the share spent in convolution
kernels, which run at the GPU's dense BF16 tensor throughput, and the rest (BatchNorm, activations,
PEM/TIM/TD element-wise work, copies), which is bound by memory bandwidth: both shares are scaled by
the ratio of the two GPUs' figures (:data:`tdrl.cluster.instances.GPUS`)::

    t_other = t_conv * TFLOPS_ref / TFLOPS_other + (t - t_conv) * bandwidth_ref / bandwidth_other

The convolution share is measured too: the CUDA time of ``aten::cudnn_convolution`` and
``aten::convolution_backward`` in the profile of the ``tsn`` step (``benchmarks/profile_step.py``,
``benchmarks/results/*profile*.txt``), 29 % on the H200. The convolutions are the same ResNet-50 in
every network, so their time per clip is TSN's in all of them; PEM, TIM and the TD loss add memory-
bound work only. Without a profile, the whole step is scaled by bandwidth (the bound for a network
this memory-bound), and the plan says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from tdrl.cluster.instances import GPUS, gpu_model
from tdrl.config.base import ConfigError
from tdrl.config.model import ModelConfig

MEASURED_ROWS = ("tsn", "tsm", "tim", "tdrl")


@dataclass(frozen=True)
class Throughput:
    """Training-step clips/s of one network on one GPU model (a row of a throughput.py JSON)."""

    gpu: str  # GPU model (instances.gpu_model): "H200", "H100", "cpu"
    row: str  # throughput.py's row: tsn, tsm, tim, tdrl, straightforward
    frames: int
    mode: str  # eager or compile
    clips_per_s: float
    size: int = 224  # crop size the rows were measured at (throughput.py --size)
    backbone: str = "resnet50"  # throughput.py times ModelConfig's default backbone at width 1
    source: str = ""


# ../shared/docs/spec.md, "Speed yardsticks measured on one H100": TSN-R50, bf16, channels_last,
# 32 clips x 8 frames, eager. Used only when no throughput.py measurement is there.
SPEC_DEFAULT = Throughput("H100", "tsn", 8, "eager", 497.0, source="spec.md 'Speed yardsticks' (TSN-R50 on one "
                                                                     "H100, bf16, 32 clips x 8 frames, eager)")


def load_throughput(paths: Iterable[str | Path]) -> list[Throughput]:
    """The rows of ``benchmarks/throughput.py --json`` files (``{"device", "size", "rows": [{"row",
    "frames", "mode", "clips_per_s", ...}]}``); a file that does not parse is a ConfigError naming it."""
    out: list[Throughput] = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            gpu, size = gpu_model(str(data["device"])), int(data.get("size", 224))
            for r in data["rows"]:
                out.append(Throughput(gpu, str(r["row"]), int(r["frames"]), str(r["mode"]),
                                      float(r["clips_per_s"]), size, source=f"{path} ({data['device']})"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a benchmarks/throughput.py --json file ({type(exc).__name__}: {exc}); "
                              f"write one with `python benchmarks/throughput.py --json FILE`") from exc
    return out


def throughput_files(root: str | Path) -> list[Path]:
    """``<root>/benchmarks/results/*.json`` (the measured table; none is fine)."""
    return sorted((Path(root) / "benchmarks" / "results").glob("*.json"))


# --- the convolution share of a step, from a profile ---------------------------------------------------

@dataclass(frozen=True)
class ConvShare:
    """The share of a ``tsn`` training step's GPU time spent in convolutions, on one GPU model."""

    gpu: str
    share: float
    source: str


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"not a time: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_conv_share(text: str, gpu: str, source: str = "", row: str = "tsn") -> ConvShare:
    """The convolution share of the ``## <row>:`` section of ``benchmarks/profile_step.py`` output (a
    ``torch.profiler`` key-average table): CUDA total of ``aten::cudnn_convolution`` (forward) and
    ``aten::convolution_backward`` (both gradients) over the section's ``Self CUDA time total``."""
    m = re.search(rf"^## {re.escape(row)}:.*?(?=^## |\Z)", text, re.M | re.S)
    if not m:
        raise ValueError(f"no '## {row}:' section")
    section = m.group(0)
    total = re.search(r"Self CUDA time total:\s*(\S+)", section)
    if not total:
        raise ValueError(f"'## {row}:' has no 'Self CUDA time total'")
    conv = 0.0
    for name in ("aten::cudnn_convolution", "aten::convolution_backward"):
        line = next((ln for ln in section.splitlines() if ln.strip().startswith(name + " ")), None)
        if line is None:
            raise ValueError(f"'## {row}:' has no {name} row")
        cols = re.split(r"\s{2,}", line.strip())
        conv += _seconds(cols[8])  # Name, Self CPU %, Self CPU, CPU total %, CPU total, CPU avg, Self CUDA,
        #                            Self CUDA %, CUDA total, ...
    share = conv / _seconds(total.group(1))
    if not 0.0 < share < 1.0:
        raise ValueError(f"convolution share {share:.3f} is not in (0, 1)")
    return ConvShare(gpu, share, source or "profile")


def load_conv_shares(root: str | Path) -> dict[str, ConvShare]:
    """Per GPU model, the ``tsn`` convolution share of ``benchmarks/results/<gpu>_profile_*.txt``
    (``profile_step.py``'s output; the GPU is the file name's first word). None there is fine."""
    out: dict[str, ConvShare] = {}
    for path in sorted((Path(root) / "benchmarks" / "results").glob("*profile*.txt")):
        gpu = gpu_model(path.name.split("_")[0])
        if gpu in out:
            continue
        try:
            out[gpu] = parse_conv_share(path.read_text(), gpu, str(path))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a benchmarks/profile_step.py output ({exc})") from exc
    return out


# --- networks: what the measured rows add up to --------------------------------------------------------

@dataclass(frozen=True)
class Network:
    """The parts of a network that set its step time: temporal module, enhancement, TD loss."""

    temporal: str  # "none", "tsm", "tim"
    enhance: str  # "none", "pem", "mem"
    td: bool  # a TD loss that trains (ModelConfig.td_trains)

    @property
    def base(self) -> str:
        """The measured row of its temporal module alone."""
        return {"none": "tsn", "tsm": "tsm", "tim": "tim"}[self.temporal]

    @property
    def name(self) -> str:
        """``"tsm"``, ``"tsm+pem"``, ``"tim+pem+td"`` (the measured ``tdrl``), ``"tsn"``."""
        return "+".join([self.base] + ([self.enhance] if self.enhance != "none" else []) + (["td"] if self.td else []))

    @property
    def measured_row(self) -> str | None:
        """The throughput.py row that times exactly this network, if there is one."""
        if self.enhance == "none" and not self.td:
            return self.base
        return "tdrl" if (self.temporal, self.enhance, self.td) == ("tim", "pem", True) else None


def network(model: ModelConfig) -> Network:
    """The :class:`Network` of a model configuration; its TD loss counts when it trains
    (:attr:`~tdrl.config.model.ModelConfig.td_trains`: with lambda 0 the network trains as without it)."""
    return Network(model.temporal, model.enhance, model.td_trains)


@dataclass(frozen=True)
class Timing:
    """Seconds per clip of a network on the reference GPU, and how they were obtained."""

    seconds: float
    gpu: str
    measured_frames: int  # the frame count of the rows used (scaled linearly to the trial's)
    derivation: str  # "measured tsm", "tsm + (tdrl - tim) for pem", ...
    sources: tuple[str, ...]


def _rows_at(table: Sequence[Throughput], gpu: str, frames: int) -> tuple[dict[str, Throughput], int]:
    """The eager rows of ``gpu`` at ``frames`` (else at the nearest measured frame count)."""
    rows = [t for t in table if t.gpu == gpu and t.mode == "eager" and t.row in MEASURED_ROWS]
    if not rows:
        return {}, frames
    nearest = min({t.frames for t in rows}, key=lambda f: (abs(f - frames), f))
    return {t.row: t for t in rows if t.frames == nearest}, nearest


def reference_seconds(table: Sequence[Throughput], net: Network, gpu: str, frames: int) -> Timing | None:
    """Seconds per clip of ``net`` at ``frames`` on ``gpu`` from its measured rows (a clip's cost is
    linear in T: another frame count is scaled from the nearest measured one), or None."""
    rows, at = _rows_at(table, gpu, frames)
    scale = frames / at

    def t(row: str) -> float:
        return scale / rows[row].clips_per_s

    if net.measured_row and net.measured_row in rows:
        row = rows[net.measured_row]
        return Timing(t(net.measured_row), gpu, at, f"measured {net.measured_row}", (row.source,))
    if {net.base, "tdrl", "tim"} <= set(rows):
        extras = "+".join(p for p in (net.enhance if net.enhance != "none" else "", "td" if net.td else "") if p)
        return Timing(t(net.base) + t("tdrl") - t("tim"), gpu, at, f"{net.base} + (tdrl - tim) for {extras}",
                      tuple(sorted({rows[r].source for r in (net.base, "tdrl", "tim")})))
    return None


# --- another GPU ---------------------------------------------------------------------------------------

def gpu_factor(ref: str, target: str, conv_seconds: float, seconds: float) -> float:
    """``rate_target / rate_ref`` for a step of ``seconds`` per clip of which ``conv_seconds`` are in
    convolutions (scaled by dense BF16 throughput) and the rest bound by memory bandwidth."""
    a, b = GPUS[ref], GPUS[target]
    conv = min(conv_seconds, seconds)
    other = (conv * a.bf16_tflops / b.bf16_tflops if conv else 0.0) + (seconds - conv) * a.bandwidth_tbs / b.bandwidth_tbs
    return seconds / other


@dataclass(frozen=True)
class Speed:
    """Clips/s per GPU (or per CPU worker) of a trial's training step, and where it comes from."""

    clips_per_s: float
    source: str
    exact: bool  # measured for this network, frame count and GPU model
    note: str = ""  # how it was estimated, as the plan prints it
    model: str = ""  # the GPU-to-GPU model behind an "estimated from ... x f" note, in words


def estimate(table: Sequence[Throughput], model: ModelConfig, gpu: str, *, size: int,
             convs: Mapping[str, ConvShare] | None = None, override: float | None = None) -> Speed | None:
    """Clips/s per GPU of the network ``model`` at crop ``size`` on GPU model ``gpu``, or None when nothing
    measured applies (another backbone, width or crop size; an unknown GPU; a CPU run).

    ``override`` (``--clips-per-s``) wins. Otherwise the rows measured on ``gpu`` itself, else those of
    the GPU with the most rows (the H200), else :data:`SPEC_DEFAULT` (TSN on an H100), scaled to
    ``gpu`` by :func:`gpu_factor` with that reference GPU's measured convolution share from ``convs``
    (:func:`load_conv_shares`)."""
    if override is not None:
        return Speed(override, "--clips-per-s", True)
    backbone, frames = model.backbone, model.frames
    if backbone != "resnet50" or model.width != 1.0:
        return None
    net = network(model)
    usable = [t for t in table if t.size == size and t.backbone == backbone]
    gpus = sorted({t.gpu for t in usable}, key=lambda g: (g != gpu, -sum(t.gpu == g for t in usable), g))
    timing = next((x for g in gpus if (x := reference_seconds(usable, net, g, frames)) is not None), None)
    notes: list[str] = []
    if timing is None:  # the spec's TSN yardstick: a lower bound on the time of anything else
        if size != SPEC_DEFAULT.size:
            return None
        timing = Timing(SPEC_DEFAULT.frames / frames / SPEC_DEFAULT.clips_per_s, SPEC_DEFAULT.gpu,
                        SPEC_DEFAULT.frames, "measured tsn", (SPEC_DEFAULT.source,))
        if net.name != "tsn":
            notes.append(f"tsn's rate for a {net.name} network (slower: a lower bound on time)")
    elif timing.derivation != f"measured {net.measured_row}":
        both = net.enhance != "none" and net.td
        notes.append(f"{net.name} timed as {timing.derivation}"
                     + ("" if both else " (PEM and the TD loss measured together: an upper bound on its time)"))
    if timing.measured_frames != frames:
        notes.append(f"scaled from {timing.measured_frames} to {frames} frames")
    rate = 1.0 / timing.seconds
    if timing.gpu != gpu:
        if gpu not in GPUS or timing.gpu not in GPUS:
            return None
        conv_s, conv = 0.0, (convs or {}).get(timing.gpu)
        if conv is not None:
            tsn_rows, at = _rows_at(usable, timing.gpu, frames)
            if "tsn" in tsn_rows:
                conv_s = conv.share * (frames / at) / tsn_rows["tsn"].clips_per_s
        factor = gpu_factor(timing.gpu, gpu, conv_s, timing.seconds)
        a, b = GPUS[timing.gpu], GPUS[gpu]
        if conv_s:
            model = (f"{conv.share:.0%} of the {timing.gpu}'s TSN step in convolutions, scaled by dense BF16 "
                     f"{a.bf16_tflops:g} -> {b.bf16_tflops:g} TFLOPS; the rest by memory bandwidth "
                     f"{a.bandwidth_tbs:g} -> {b.bandwidth_tbs:g} TB/s")
        else:
            model = f"memory bandwidth {a.bandwidth_tbs:g} -> {b.bandwidth_tbs:g} TB/s; no convolution profile"
        notes.append(f"estimated from {timing.gpu} measurements x {factor:.2f}")
        rate *= factor
        return Speed(rate, "; ".join(timing.sources), False, "; ".join(notes), model)
    return Speed(rate, "; ".join(timing.sources), not notes, "; ".join(notes))
