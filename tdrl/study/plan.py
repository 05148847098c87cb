"""The study planner (``--plan``): what a study would train, where it fits, how long it takes and what
it costs, worked out before anything starts (no Ray, no files, no MLflow runs).

The model, in the order the plan prints it:

- **Trials**: the study's trial list (:func:`tdrl.study.trials.resolve_study`, as a launch resolves
  it), less those already trained: a FINISHED run of the same configuration hash, seed and preset anywhere in the MLflow store (:func:`tdrl.study.sharing.find_shared`: this
  study's own finished trials and runs another study trained, which a launch would share). The
  store is only read, and only when it exists (MLflow creates a missing ``sqlite:///`` file).
- **Dataset size**: the clips of the train and val annotations (:mod:`tdrl.data.annotations`); for a
  synthetic preset whose set is not generated yet, its generator's counts; for Something-Something
  V1/V2 that cannot be read here, the published split sizes (:data:`PUBLISHED_SPLITS`), said so.
- **Per trial**: ``train.workers`` x (``train.cpus_per_worker`` CPU + 1 GPU on GPU nodes) and a driver
  (one ``TRAIN_DRIVER`` unit where the cluster has it, else one CPU), as :mod:`tdrl.study.runner` asks.
- **Side by side**: on a cluster YAML (``--cluster``), every node type at its ``max_workers`` (the
  YAML's global ``max_workers`` caps the worker nodes; node types that hold more worker slots are
  counted first) plus the head; a worker slot is one worker's CPUs and GPU on one node; trials fit
  while their slots and drivers do. On this machine: ``os.cpu_count()`` and the visible GPUs.
  ``--max-concurrent`` caps both.
- **Time**: a trial's seconds are ``epochs x (train clips + EVAL_COST x val clips) / (workers x
  clips/s per GPU)``: the GPUs are the bottleneck (data loading keeps up), DDP scales linearly, and a
  validation clip costs :data:`EVAL_COST` of a training clip (forward only; a backward pass costs
  about two forwards). A trial's rate is decided in one place, :func:`trial_rate`: clips/s per GPU
  of its network row (:func:`network_row`) from ``benchmarks/throughput.py --json`` files (the
  training step of each network, per GPU model), else :data:`SPEC_DEFAULT`; ``--clips-per-s``
  overrides. Trials are then packed greedily onto the side-by-side slots (:func:`wall_seconds`).
- **Cost**: GPU-hours (trial hours x GPUs per trial) x the price of a GPU-hour (the node type's
  on-demand price / its GPUs, :data:`INSTANCES`, or ``--gpu-hour-price``), plus the head node for
  the wall time when its price is known. Node start-up, idle time before scale-down and storage
  are left out.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from tdrl.config.base import ConfigError
from tdrl.config.experiment import Experiment
from tdrl.config.model import ModelConfig
from tdrl.study.sharing import find_shared
from tdrl.study.trials import StudyTrials, Trial
from tdrl.train.cluster import DRIVER_RESOURCE, driver_units
from tdrl.train.presets import get_preset
from tdrl.train.tracking import STUDY_RUN_TAG, get_run, sqlite_path

EVAL_COST = 1 / 3  # a validation clip (forward) against a training clip (forward + backward ~ 3 forwards)


@dataclass(frozen=True)
class Throughput:
    """Training-step clips/s of one network on one GPU model (a row of a throughput.py JSON)."""

    gpu: str  # normalised GPU model: "H100", "A10G", "cpu"
    row: str  # throughput.py's row: tsn, tsm, tim, tdrl, straightforward
    frames: int
    mode: str  # eager or compile
    clips_per_s: float
    size: int = 224  # crop size the rows were measured at (throughput.py --size)
    backbone: str = "resnet50"  # throughput.py times ModelConfig's default backbone at width 1
    source: str = ""


# ../shared/docs/spec.md, "Speed yardsticks measured on one H100": TSN-R50, bf16, channels_last,
# 32 clips x 8 frames, eager. TDRL's rows are slower than TSN, so times from it are lower bounds.
SPEC_DEFAULT = Throughput("H100", "tsn", 8, "eager", 497.0, source="spec.md 'Speed yardsticks' (TSN-R50 on one "
                                                                     "H100, bf16, 32 clips x 8 frames, eager)")

# Published split sizes (train, val clips) of the datasets the paper uses; they add up with the
# test splits to the totals the paper gives (108,499 and 220,847 videos).
PUBLISHED_SPLITS: dict[str, tuple[int, int, str]] = {
    "sthv1": (86_017, 11_522, "Something-Something V1 official train/validation lists"),
    "sthv2": (168_913, 24_777, "Something-Something V2 official train/validation lists"),
}


@dataclass(frozen=True)
class Instance:
    gpu: str  # GPU model ("" for CPU-only)
    gpus: int
    usd_per_hour: float | None  # on-demand list price, Linux; None: not in the table
    source: str = ""


# Instance types of cluster/*.yaml and their GPU models. Prices: on-demand list prices (AWS us-east-1 /
# us-west-2, GCP us-central1), Linux, as published by the providers; they change and differ by region
# and contract: pass --gpu-hour-price for yours. A spot worker type is priced at on-demand here.
INSTANCES: dict[str, Instance] = {
    "g5.12xlarge": Instance("A10G", 4, 5.672, "AWS EC2 on-demand list price"),
    "m5.2xlarge": Instance("", 0, 0.384, "AWS EC2 on-demand list price"),
    "a2-highgpu-4g": Instance("A100", 4, 14.6936, "GCP Compute Engine on-demand list price (us-central1)"),
    "n2-standard-8": Instance("", 0, 0.3885, "GCP Compute Engine on-demand list price (us-central1)"),
    "p4d.24xlarge": Instance("A100", 8, None), "p5.48xlarge": Instance("H100", 8, None),
    "p5e.48xlarge": Instance("H200", 8, None), "g6.12xlarge": Instance("L4", 4, None),
    "a3-highgpu-8g": Instance("H100", 8, None), "a2-ultragpu-8g": Instance("A100", 8, None),
}
GPU_MODELS = ("H200", "H100", "A100", "A10G", "L40S", "L4", "V100", "T4")


def gpu_model(name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"H100"``; ``"cpu"`` -> ``"cpu"``; unknown names pass through."""
    upper = name.upper()
    for model in GPU_MODELS:
        if re.search(rf"\b{model}", upper):
            return model
    return "cpu" if upper.strip() == "CPU" else name.strip()


# --- throughput: the measured table ------------------------------------------------------------------

def load_throughput(paths: Iterable[str | Path]) -> list[Throughput]:
    """The rows of ``benchmarks/throughput.py --json`` files (``{"device", "size", "rows": [{"row",
    "frames", "mode", "clips_per_s", ...}]}``); a file that does not parse is an InputError naming it."""
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


def network_row(model: ModelConfig) -> str:
    """The throughput.py row a network runs like: tsn/tsm/tim without PEM, MEM or a TD loss that
    trains (:attr:`~tdrl.config.model.ModelConfig.td_trains`); ``tdrl`` with any of them (PEM + TIM +
    TD loss: the costliest)."""
    if model.enhance != "none" or model.td_trains:
        return "tdrl"
    return {"none": "tsn", "tsm": "tsm", "tim": "tim"}[model.temporal]


@dataclass(frozen=True)
class Speed:
    clips_per_s: float  # per GPU (or per CPU worker), training step
    source: str
    exact: bool  # measured for this network, frame count and GPU model
    note: str = ""


def pick_speed(table: Sequence[Throughput], *, row: str, frames: int, gpu: str, backbone: str, width: float,
               size: int, override: float | None = None) -> Speed | None:
    """Clips/s per GPU for a trial, or None when nothing measured applies.

    Preference: ``override``; a row of ``table`` measured on ``gpu`` (else on another GPU model, H100
    first, flagged), eager mode, the same network row (else ``tdrl``, then ``tsn``, flagged) and frame
    count (else scaled by frames: a clip's cost is linear in T); then :data:`SPEC_DEFAULT`. Rows apply
    only to the network they timed: ResNet-50 at width 1 and their crop size."""
    if override is not None:
        return Speed(override, "--clips-per-s", True)
    if backbone != "resnet50" or width != 1.0:
        return None
    candidates = [t for t in (*table, SPEC_DEFAULT) if t.size == size and t.backbone == backbone]
    if not candidates:
        return None
    rows = (row, "tdrl", "tsn")

    def rank(t: Throughput) -> tuple:
        other_gpu = t.gpu != gpu
        return (other_gpu, t is SPEC_DEFAULT, other_gpu and t.gpu != "H100", rows.index(t.row) if t.row in rows else 9,
                t.frames != frames, t.mode != "eager")

    best = min(candidates, key=rank)
    if best.row not in rows:
        return None
    value = best.clips_per_s * best.frames / frames
    notes = []
    if best.gpu != gpu:
        notes.append(f"measured on {best.gpu}, not on {gpu or 'this machine'}")
    if best.row != row:
        notes.append(f"{best.row}'s rate for a {row} network" + (" (slower: a lower bound on time)"
                                                                   if best.row == "tsn" else ""))
    if best.frames != frames:
        notes.append(f"scaled from {best.frames} to {frames} frames")
    return Speed(value, f"{best.source}: {best.row}, {best.frames} frames, {best.mode}", not notes, "; ".join(notes))


# --- resources and concurrency -----------------------------------------------------------------------

@dataclass(frozen=True)
class NodeType:
    name: str
    cpus: float
    gpus: float
    count: int  # nodes of this type at full scale (the head: 1)
    resources: Mapping[str, float] = field(default_factory=dict)  # custom resources (TRAIN_DRIVER)
    instance: str = ""
    head: bool = False


@dataclass(frozen=True)
class TrialNeed:
    workers: int
    cpus_per_worker: int
    gpu: bool  # one GPU per worker


def read_cluster(path: str | Path) -> list[NodeType]:
    """A Ray cluster-launcher YAML's node types at full scale: the head once, each worker type at its
    ``max_workers``, the worker total capped by the top-level ``max_workers`` (types with more worker
    slots first: that is what a study would ask the autoscaler for)."""
    try:
        cfg = yaml.safe_load(Path(path).read_text())
        types = cfg["available_node_types"]
        head = cfg["head_node_type"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"--cluster {path}: not a Ray cluster-launcher YAML with available_node_types and "
                          f"head_node_type ({type(exc).__name__}: {exc}); see cluster/aws.yaml") from exc
    nodes = []
    for name, spec in types.items():
        res = dict(spec.get("resources") or {})
        conf = spec.get("node_config") or {}
        inst = str(conf.get("InstanceType") or conf.get("machineType") or "")
        count = 1 if name == head else int(spec.get("max_workers", 0))
        nodes.append(NodeType(name, float(res.pop("CPU", 0)), float(res.pop("GPU", 0)), count,
                              {k: float(v) for k, v in res.items()}, inst, name == head))
    budget = int(cfg.get("max_workers", sum(n.count for n in nodes if not n.head)))
    capped = []
    for n in sorted(nodes, key=lambda n: (not n.head, -n.gpus, -n.cpus)):
        if not n.head:
            n = NodeType(n.name, n.cpus, n.gpus, min(n.count, budget), n.resources, n.instance)
            budget -= n.count
        capped.append(n)
    return capped


def this_machine() -> list[NodeType]:
    """This machine as a local Ray would start: every core, the visible GPUs, the TRAIN_DRIVER resource."""
    cpus = os.cpu_count() or 1
    return [NodeType("this machine", float(cpus), float(visible_gpus()), 1, {DRIVER_RESOURCE: driver_units(cpus)},
                     head=True)]


def visible_gpus() -> int:
    try:
        import torch  # seconds to import: only to count this machine's GPUs

        return torch.cuda.device_count()
    except Exception:  # no torch or no driver: no GPU
        return 0


def slots_per_node(node: NodeType, need: TrialNeed) -> int:
    """Train workers one node holds: its CPUs / cpus_per_worker, and its GPUs when workers take one."""
    by_cpu = int(node.cpus // need.cpus_per_worker)
    return min(by_cpu, int(node.gpus)) if need.gpu else by_cpu


def side_by_side(nodes: Sequence[NodeType], need: TrialNeed, cap: int | None = None) -> int:
    """Trials that run at once: worker slots / workers, while every trial's driver also fits (a
    ``TRAIN_DRIVER`` unit where the cluster has the resource, else a CPU left over by the workers)."""
    slots = sum(slots_per_node(n, need) * n.count for n in nodes)
    n = slots // need.workers
    driver_units = sum(n_.resources.get(DRIVER_RESOURCE, 0) * n_.count for n_ in nodes)
    if driver_units < 1:  # drivers take CPUs next to the workers'
        cpus = sum(n_.cpus * n_.count for n_ in nodes)
        while n > 0 and n * (need.workers * need.cpus_per_worker + 1) > cpus:
            n -= 1
    else:
        n = min(n, int(driver_units))
    return min(n, cap) if cap else n


def cluster_gpu(nodes: Sequence[NodeType]) -> tuple[str, NodeType | None]:
    """The GPU model of the node type that holds the GPUs (``""`` if none, ``"?"`` if unknown)."""
    gpu_nodes = [n for n in nodes if n.gpus > 0]
    if not gpu_nodes:
        return "", None
    node = max(gpu_nodes, key=lambda n: n.gpus * n.count)
    inst = INSTANCES.get(node.instance)
    return (inst.gpu if inst else "?"), node


# --- time and cost -----------------------------------------------------------------------------------

def trial_seconds(epochs: int, train_clips: int, val_clips: int, workers: int, clips_per_s: float,
                  eval_cost: float = EVAL_COST) -> float:
    """One trial's training time: ``epochs x (train + eval_cost x val) / (workers x clips_per_s)``."""
    return epochs * (train_clips + eval_cost * val_clips) / (workers * clips_per_s)


def wall_seconds(durations: Sequence[float], slots: int) -> float:
    """Wall time of ``durations`` run ``slots`` at a time, each starting on the first free slot in order
    (Tune starts trials in the grid's order as resources free up)."""
    if not durations:
        return 0.0
    if slots < 1:
        return math.inf
    free = [0.0] * min(slots, len(durations))
    for d in durations:
        i = free.index(min(free))
        free[i] += d
    return max(free)


def gpu_hours(durations: Sequence[float], gpus_per_trial: int) -> float:
    return sum(durations) * gpus_per_trial / 3600


# --- the plan of a study -----------------------------------------------------------------------------

@dataclass
class TrialPlan:
    row: str
    label: str
    seed: int
    status: str  # "train", "finished" (this study run) or "shared" (another study's run)
    source: str = ""  # the run it reuses
    network: str = ""
    seconds: float | None = None


@dataclass
class DataSize:
    train: int | None
    val: int | None
    source: str
    readable: bool
    error: str = ""


@dataclass
class Plan:
    study: str
    title: str
    preset: str
    seeds: int
    trials: list[TrialPlan]
    data_root: str
    data: DataSize
    need: TrialNeed
    where: str
    nodes: list[NodeType]
    concurrent: int
    gpu: str
    speed: dict[str, Speed | None]  # per network row
    mlflow: str
    price: float | None = None  # USD per GPU-hour
    price_source: str = ""
    head_price: float | None = None
    epochs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def to_train(self) -> list[TrialPlan]:
        return [t for t in self.trials if t.status == "train"]

    @property
    def wall_s(self) -> float | None:
        secs = [t.seconds for t in self.to_train]
        return None if any(s is None for s in secs) else wall_seconds(secs, self.concurrent)

    @property
    def gpu_hours(self) -> float | None:
        secs = [t.seconds for t in self.to_train]
        if any(s is None for s in secs):
            return None
        return gpu_hours(secs, self.need.workers if self.need.gpu else 0)

    @property
    def cost(self) -> float | None:
        hours, wall = self.gpu_hours, self.wall_s
        if hours is None or self.price is None or wall is None or math.isinf(wall):
            return None
        return hours * self.price + (self.head_price or 0.0) * wall / 3600


def dataset_size(exp: Experiment, synthetic: Mapping[str, Any] | None) -> DataSize:
    """Train/val clips from the annotations; else a not-yet-generated synthetic set's counts; else the
    published split sizes of a known dataset (marked unreadable, so a launch would refuse)."""
    from tdrl.data.builders import annotations_for  # torch: not on the path of `tdrl study --help`

    try:
        train, val = (len(annotations_for(exp.data, s).records) for s in ("train", "val"))
        return DataSize(train, val, f"annotations in {exp.data.root}", True)
    except (OSError, ValueError) as exc:
        error = str(exc)
    root = Path(exp.data.root)
    if synthetic and (not root.exists() or not any(root.iterdir())):
        k = synthetic["num_classes"]
        return DataSize(k * synthetic["train_per_class"], k * synthetic["val_per_class"],
                        "the preset's synthetic set, generated on launch", True)
    if exp.data.dataset in PUBLISHED_SPLITS:
        train, val, src = PUBLISHED_SPLITS[exp.data.dataset]
        return DataSize(train, val, src, False, error)
    return DataSize(None, None, "", False, error)


def _store_readable(uri: str) -> bool:
    """Read MLflow only where it exists: a ``sqlite:///`` store MLflow would create is left alone."""
    db = sqlite_path(uri)
    return db is None or db.is_file()


def done_before(uri: str, trial: Trial, preset: str, study_run: str) -> tuple[str, str]:
    """``("finished"|"shared"|"train", source run)`` of one trial's configuration hash and seed in the store."""
    source = find_shared(uri, trial.config_hash, trial.seed, preset)
    if source is None:
        return "train", ""
    tags = get_run(uri, source.run_id).data.tags
    if tags.get(STUDY_RUN_TAG) == study_run:
        return "finished", source.run_id
    return "shared", f"{source.study} run {source.run_id}"


def trial_rate(exp: Experiment, table: Sequence[Throughput], *, gpu: str,
               clips_per_s: float | None = None) -> tuple[str, Speed | None]:
    """The rate a trial trains at: ``(its network row, clips/s per GPU or None)``. The one place a
    trial's speed is decided (:func:`network_row`, :func:`pick_speed`); :func:`plan_trials` turns it
    into the trial's seconds with :func:`trial_seconds`."""
    row = network_row(exp.model)
    m = exp.model
    return row, pick_speed(table, row=row, frames=m.frames, gpu=gpu, backbone=m.backbone, width=m.width,
                           size=exp.data.input_size, override=clips_per_s)


def plan_trials(trials: StudyTrials, *, cluster: str | None = None, gpu_hour_price: float | None = None,
                clips_per_s: float | None = None, repo: str | Path | None = None, lookup: bool = True) -> Plan:
    """The plan of a resolved study (:func:`tdrl.study.trials.resolve_study`); ``lookup`` looks for
    finished and shared runs in MLflow by the trials' hashes. Reads files and the MLflow store only."""
    preset = get_preset(trials.preset)
    base, uri = trials.base, trials.mlflow_uri
    data = dataset_size(base, preset.synthetic if base.data.dataset == "sthv2" else None)
    t = base.train
    nodes = read_cluster(cluster) if cluster else this_machine()
    need = TrialNeed(_workers(t), t.cpus_per_worker,
                     any(n.gpus > 0 for n in nodes) if t.use_gpu is None else bool(t.use_gpu))
    gpu, gpu_node = (cluster_gpu(nodes) if cluster else (_local_gpu_model(), None)) if need.gpu else ("cpu", None)
    table = load_throughput(throughput_files(repo or Path.cwd()))
    notes: list[str] = []
    store = lookup and _store_readable(uri)
    if lookup and not store:
        notes.append(f"no MLflow store at {uri} yet: nothing finished or shared")
    pending = data.source.startswith("the preset's")  # not generated yet: its hash is not the launch's
    if pending and store:
        notes.append("the synthetic set is generated on launch: finished or shared runs are matched only then")
    planned: list[TrialPlan] = []
    speeds: dict[str, Speed | None] = {}
    for trial in trials.trials:
        exp = Experiment.from_flat(trial.flat)
        row, sp = trial_rate(exp, table, gpu=gpu, clips_per_s=clips_per_s)
        speeds.setdefault(row, sp)
        status, source = done_before(uri, trial, trials.preset, trials.study_run) if store and not pending else ("train", "")
        secs = (trial_seconds(exp.train.epochs, data.train, data.val, _workers(exp.train), sp.clips_per_s)
                if sp is not None and data.train is not None else None)
        planned.append(TrialPlan(trial.row, trial.label, trial.seed, status, source, row, secs))
    price, price_source, head_price = _prices(nodes, gpu_node, need, gpu_hour_price)
    return Plan(trials.study.name, trials.study.title, trials.preset, trials.options.seeds, planned, base.data.root,
                data, need, f"--cluster {cluster}" if cluster else "this machine", nodes,
                side_by_side(nodes, need, trials.options.max_concurrent), gpu, speeds, uri, price, price_source,
                head_price, t.epochs, notes)


def _workers(t: Any) -> int:
    return int(getattr(t, "max_workers", t.workers))  # an elastic MIN-MAX run is planned at MAX


def print_plan(plan: Plan) -> int:
    """Print the plan (the ``--plan`` command's output); exit code 0."""
    print(format_plan(plan), flush=True)
    return 0


def _local_gpu_model() -> str:
    try:
        import torch  # seconds to import: only to count this machine's GPUs

        return gpu_model(torch.cuda.get_device_name(0))
    except Exception:
        return "?"


def _prices(nodes: Sequence[NodeType], gpu_node: NodeType | None, need: TrialNeed,
            override: float | None) -> tuple[float | None, str, float | None]:
    """(USD per GPU-hour, its source, USD per head-node hour) for a cluster's GPU node type."""
    head = next((n for n in nodes if n.head), None)
    head_inst = INSTANCES.get(head.instance) if head and head.instance else None
    head_price = head_inst.usd_per_hour if head_inst and not head_inst.gpus else None
    if not need.gpu:
        return None, "", head_price
    if override is not None:
        return override, "--gpu-hour-price", head_price
    inst = INSTANCES.get(gpu_node.instance) if gpu_node else None
    if inst is None or inst.usd_per_hour is None or not inst.gpus:
        return None, "", head_price
    return (inst.usd_per_hour / inst.gpus,
            f"{gpu_node.instance} ${inst.usd_per_hour:g}/h / {inst.gpus} GPUs, {inst.source}", head_price)


# --- printing ----------------------------------------------------------------------------------------

def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if math.isinf(seconds):
        return "never (no trial fits)"
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def format_plan(p: Plan) -> str:
    """The plan as the console prints it."""
    lines = [f"[tdrl] plan of {p.study} ({p.title}), preset {p.preset}: nothing was started or written"]
    d = p.data
    size = f"{d.train:,} train / {d.val:,} val clips ({d.source})" if d.train is not None else "size unknown"
    if d.readable:
        lines.append(f"data      {p.data_root}: {size}")
    else:
        lines.append(f"data      {p.data_root}: NOT READABLE here ({d.error}); {size}. A launch refuses "
                     f"before Ray starts until data.root can be read")
    train, done = p.to_train, [t for t in p.trials if t.status != "train"]
    rows = len({t.row for t in p.trials})
    lines.append(f"trials    {len(p.trials)} ({rows} row(s) x {p.seeds} seed(s)); {len(done)} already in MLflow "
                 f"({sum(t.status == 'finished' for t in done)} finished, {sum(t.status == 'shared' for t in done)} "
                 f"shared from other studies); {len(train)} to train; MLflow {p.mlflow}")
    width = max([len(t.label) for t in p.trials] + [5])
    for key in dict.fromkeys(t.row for t in p.trials):
        ts = [t for t in p.trials if t.row == key]
        todo = [str(t.seed) for t in ts if t.status == "train"]
        reuse = [f"{t.seed}: {t.status} {t.source}" for t in ts if t.status != "train"]
        secs = next((t.seconds for t in ts), None)
        lines.append(f"  {ts[0].label:<{width}}  {ts[0].network:<5} seeds to train: {','.join(todo) or '-'}"
                     f"{'; ' + '; '.join(reuse) if reuse else ''}; {_hours(secs)} each")
    n = p.need
    per = f"{n.workers} worker(s) x ({n.cpus_per_worker} CPU{' + 1 GPU' if n.gpu else ''}) + a trial driver"
    lines.append(f"per trial {per}")
    nodes = ", ".join(f"{x.name} x{x.count} ({x.cpus:g} CPU, {x.gpus:g} GPU{' ' + x.instance if x.instance else ''})"
                      for x in p.nodes if x.count)
    lines.append(f"fits      {p.where}: {nodes} -> {p.concurrent} trial(s) side by side"
                 + ("" if p.concurrent else ": a trial needs more than the whole cluster"))
    for row, sp in p.speed.items():
        if sp is None:
            lines.append(f"speed     {row}: no measured clips/s for this network on {p.gpu or 'this machine'}; "
                         f"time not estimated (pass --clips-per-s N, clips/s per worker)")
        else:
            flag = "" if sp.exact else f" [{sp.note}]"
            lines.append(f"speed     {row}: {sp.clips_per_s:.0f} clips/s per {'GPU' if n.gpu else 'worker'} from "
                         f"{sp.source}{flag}")
    rough = any(sp is not None and not sp.exact for sp in p.speed.values())
    lines.append(f"time      {_hours(p.wall_s)} wall for {len(train)} trial(s) of {p.epochs} epochs"
                 f"{' [from speeds measured on another setup: see speed]' if rough else ''} (compute-bound: data "
                 f"loading keeps up, DDP scales linearly, a val clip costs {EVAL_COST:.2f} of a train clip)")
    if n.gpu:
        gh = p.gpu_hours
        lines.append(f"GPU-hours {gh:,.1f}" if gh is not None else "GPU-hours ?")
        if p.cost is not None:
            head = (f" + head node ${p.head_price:g}/h for the wall time" if p.head_price else "")
            lines.append(f"cost      ${p.cost:,.0f} at ${p.price:.3f}/GPU-hour ({p.price_source}){head}; "
                         f"--gpu-hour-price to use yours")
        else:
            lines.append("cost      ? (no price for this GPU node type: pass --gpu-hour-price USD)")
    else:
        lines.append("GPU-hours 0 (CPU workers)")
    lines += [f"note      {x}" for x in p.notes]
    return "\n".join(lines)
