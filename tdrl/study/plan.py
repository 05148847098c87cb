"""The study planner (``--plan``): what a study would train, where it fits, how long it takes and what
it costs, worked out before anything starts (no Ray, no files, no MLflow runs).

The model, in the order the plan prints it:

- **Trials**: the study's trial list (:func:`tdrl.study.trials.resolve_study`, as a launch resolves
  it), less those already trained: a FINISHED run of the same configuration hash, seed and preset
  anywhere in the MLflow store (:func:`tdrl.study.sharing.find_shared`: this study's own finished
  trials and runs another study trained, which a launch would share). The
  store is only read, and only when it exists (MLflow creates a missing ``sqlite:///`` file).
- **Dataset size**: the clips of the train and val annotations (:func:`tdrl.data.annotations.count_clips`:
  a remote root's files are read in memory, nothing is staged or written); for a
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
  of its own network on the cluster's GPU model from :mod:`tdrl.cluster.speed` (the
  ``benchmarks/throughput.py --json`` rows measured on that GPU, else those measured on another, the
  H200, carried over by a stated model and printed with the factor); ``--clips-per-s`` overrides.
  Trials are then packed greedily onto the side-by-side slots (:func:`wall_seconds`).
- **Cost**: GPU-hours (trial hours x GPUs per trial) x the price of a GPU-hour: the GPU node types'
  prices (:data:`tdrl.cluster.instances.INSTANCES`: on demand, or spot for a spot node type) over
  their GPUs, or ``--gpu-hour-price``; plus the head node for the wall time when its price is known.
  Node start-up, idle time before scale-down and storage are left out.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tdrl.cluster.instances import gpu_model
from tdrl.cluster.nodes import NodeType, read_cluster
from tdrl.cluster.speed import (ConvShare, Speed, Throughput, estimate, load_conv_shares, load_throughput, network,
                               throughput_files)
from tdrl.config.experiment import Experiment
from tdrl.data.annotations import count_clips
from tdrl.study.sharing import find_shared
from tdrl.study.trials import StudyTrials, Trial
from tdrl.train.cluster import DRIVER_RESOURCE, driver_units
from tdrl.train.presets import get_preset
from tdrl.train.tracking import STUDY_RUN_TAG, get_run, sqlite_path

EVAL_COST = 1 / 3  # a validation clip (forward) against a training clip (forward + backward ~ 3 forwards)


# Published split sizes (train, val clips) of the datasets the paper uses; they add up with the
# test splits to the totals the paper gives (108,499 and 220,847 videos).
PUBLISHED_SPLITS: dict[str, tuple[int, int, str]] = {
    "sthv1": (86_017, 11_522, "Something-Something V1 official train/validation lists"),
    "sthv2": (168_913, 24_777, "Something-Something V2 official train/validation lists"),
}


# --- resources and concurrency -----------------------------------------------------------------------

@dataclass(frozen=True)
class TrialNeed:
    workers: int
    cpus_per_worker: int
    gpu: bool  # one GPU per worker


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
    """The GPU model of the node type that holds the most GPUs (``""`` if none, ``"?"`` if unknown)."""
    gpu_nodes = [n for n in nodes if n.gpus > 0 and n.count > 0]
    if not gpu_nodes:
        return "", None
    node = max(gpu_nodes, key=lambda n: n.gpus * n.count)
    return node.gpu or "?", node


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
    try:  # a remote root is read in memory, not staged: the plan writes nothing
        train, val = (count_clips(exp.data, s) for s in ("train", "val"))
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


def trial_rate(exp: Experiment, table: Sequence[Throughput], *, gpu: str, convs: Mapping[str, ConvShare],
               clips_per_s: float | None = None) -> tuple[str, Speed | None]:
    """The rate a trial trains at: ``(its network, clips/s per GPU or None)``. The one place a trial's
    speed is decided: its own network (:func:`tdrl.cluster.speed.network`: TSM + PEM is not TDRL) on the
    cluster's GPU model (:func:`tdrl.cluster.speed.estimate`); :func:`plan_trials` turns it into the
    trial's seconds with :func:`trial_seconds`."""
    return network(exp.model).name, estimate(table, exp.model, gpu, size=exp.data.input_size, convs=convs,
                                             override=clips_per_s)


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
    root = repo or _measurements_root()
    table, convs = load_throughput(throughput_files(root)), load_conv_shares(root)
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
        row, sp = trial_rate(exp, table, gpu=gpu, convs=convs, clips_per_s=clips_per_s)
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


def _measurements_root() -> Path:
    """Where ``benchmarks/results`` is: the checkout this package runs from (an editable install, a
    ``ray job submit`` working dir), else the current folder."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "benchmarks" / "results").is_dir() else Path.cwd()


def _local_gpu_model() -> str:
    try:
        import torch  # seconds to import: only to name this machine's GPU

        return gpu_model(torch.cuda.get_device_name(0))
    except Exception:
        return "?"


def _prices(nodes: Sequence[NodeType], gpu_node: NodeType | None, need: TrialNeed,
            override: float | None) -> tuple[float | None, str, float | None]:
    """(USD per GPU-hour, its source, USD per head-node hour). The GPU-hour is the price of the GPU node
    types the plan counts (on demand, or spot for a spot type) over their GPUs; None when one of them
    has no price in :data:`tdrl.cluster.instances.INSTANCES`."""
    head = next((n for n in nodes if n.head), None)
    head_price = head.price() if head is not None and head.gpus == 0 else None
    if not need.gpu:
        return None, "", head_price
    if override is not None:
        return override, "--gpu-hour-price", head_price
    gpu_nodes = [n for n in nodes if n.gpus > 0 and n.count > 0]
    if not gpu_nodes or any(n.price() is None for n in gpu_nodes):
        return None, "", head_price
    per_gpu = sum(n.price() * n.count for n in gpu_nodes) / sum(n.gpus * n.count for n in gpu_nodes)
    parts = [f"{n.instance} {'spot' if n.spot else 'on demand'} ${n.price():g}/h / {n.gpus:g} GPUs" for n in gpu_nodes]
    sources = sorted({f"{n.instance_type.region}, {n.instance_type.source}" for n in gpu_nodes})
    return per_gpu, f"{', '.join(parts)}; {'; '.join(sources)}: tdrl/cluster/instances.py", head_price


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
        lines.append(f"  {ts[0].label:<{width}}  {ts[0].network:<10} seeds to train: {','.join(todo) or '-'}"
                     f"{'; ' + '; '.join(reuse) if reuse else ''}; {_hours(secs)} each")
    n = p.need
    per = f"{n.workers} worker(s) x ({n.cpus_per_worker} CPU{' + 1 GPU' if n.gpu else ''}) + a trial driver"
    lines.append(f"per trial {per}")
    nodes = ", ".join(f"{x.name} x{x.count} ({x.cpus:g} CPU, {x.gpus:g} GPU"
                      f"{' ' + x.gpu if x.gpus and x.gpu else ''}{' ' + x.instance if x.instance else ''}"
                      f"{' spot' if x.spot else ''})" for x in p.nodes if x.count)
    lines.append(f"fits      {p.where}: {nodes} -> {p.concurrent} trial(s) side by side"
                 + ("" if p.concurrent else ": a trial needs more than the whole cluster"))
    for row, sp in p.speed.items():
        if sp is None:
            lines.append(f"speed     {row}: no clips/s measured or estimated for this network on "
                         f"{p.gpu or 'this machine'}; time not estimated (pass --clips-per-s N, clips/s per worker)")
        else:
            flag = "" if sp.exact or not sp.note else f" [{sp.note}]"
            on = f" ({p.gpu})" if n.gpu and p.gpu not in ("", "?") else ""
            lines.append(f"speed     {row}: {sp.clips_per_s:.0f} clips/s per {'GPU' if n.gpu else 'worker'}{on} from "
                         f"{sp.source}{flag}")
    for model in dict.fromkeys(sp.model for sp in p.speed.values() if sp is not None and sp.model):
        lines.append(f"model     rates carried to the {p.gpu}: {model}")
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
        elif any(x.gpus and x.count and not x.instance for x in p.nodes):
            lines.append("cost      ? (the GPU nodes name no instance type to price: KubeRay pods run on the "
                         "Kubernetes cluster's nodes, this machine on its own; pass --gpu-hour-price USD)")
        else:
            lines.append(f"cost      ? (no price for this GPU node type{' (' + p.gpu + ')' if p.gpu else ''} in "
                         f"tdrl/cluster/instances.py: pass --gpu-hour-price USD)")
    else:
        lines.append("GPU-hours 0 (CPU workers)")
    lines += [f"note      {x}" for x in p.notes]
    return "\n".join(lines)
