"""The study planner (`--plan`): its arithmetic on hand-worked cases, and that planning starts nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tdrl.cluster.speed import network
from tdrl.study import plan as P

REPO = Path(__file__).resolve().parents[2]
AWS = str(REPO / "cluster" / "aws.yaml")


def test_trial_seconds_by_hand():
    # 2 epochs x (300 train + 90/3 val-equivalent clips) / (2 workers x 10 clips/s) = 2 x 330 / 20 = 33 s
    assert P.trial_seconds(2, 300, 90, 2, 10.0) == pytest.approx(33.0)
    assert P.trial_seconds(1, 100, 0, 1, 50.0, eval_cost=1.0) == pytest.approx(2.0)


def test_wall_seconds_packs_trials_on_free_slots_in_order():
    assert P.wall_seconds([3, 3, 3], 2) == 6  # two at once, then the third
    assert P.wall_seconds([5, 1, 1, 1], 2) == 5  # the short ones run beside the long one
    assert P.wall_seconds([1, 1, 5], 2) == 6  # order matters: the long one starts last
    assert P.wall_seconds([2, 2], 8) == 2
    assert P.wall_seconds([], 2) == 0 and math.isinf(P.wall_seconds([1], 0))
    assert P.gpu_hours([1800, 3600], 8) == pytest.approx(12.0)  # 1.5 h x 8 GPUs


def test_side_by_side_on_a_gpu_cluster_and_on_cpus():
    head = P.NodeType("head", 8, 0, 1, head=True)
    gpu = P.NodeType("gpu", 48, 4, 4)
    paper = P.TrialNeed(workers=8, cpus_per_worker=8, gpu=True)
    # a 48-CPU 4-GPU node holds min(48 // 8, 4) = 4 workers; 4 nodes: 16 slots = 2 trials of 8
    assert P.slots_per_node(gpu, paper) == 4
    assert P.side_by_side([head, gpu], paper) == 2
    assert P.side_by_side([head, gpu], paper, cap=1) == 1
    assert P.side_by_side([head, P.NodeType("gpu", 48, 4, 1)], paper) == 0  # 4 GPUs < 8 workers
    # This machine: 2 CPUs, drivers on the TRAIN_DRIVER resource: 2-worker trials one at a time.
    local = [P.NodeType("here", 2, 0, 1, {"TRAIN_DRIVER": 4}, head=True)]
    assert P.side_by_side(local, P.TrialNeed(2, 1, False)) == 1
    assert P.side_by_side(local, P.TrialNeed(1, 1, False)) == 2
    # Without TRAIN_DRIVER each driver takes a CPU: 4 CPUs fit 2 one-worker trials, not 4.
    assert P.side_by_side([P.NodeType("n", 4, 0, 1, head=True)], P.TrialNeed(1, 1, False)) == 2


def test_cluster_gpu_is_the_gpu_richest_node_type():
    from tdrl.cluster.nodes import read_cluster

    nodes = read_cluster(AWS)
    gpu, node = P.cluster_gpu(nodes)
    assert (gpu, node.name, node.instance) == ("A10G", "gpu_worker", "g5.12xlarge")
    assert P.cluster_gpu([P.NodeType("head", 8, 0, 1, head=True)]) == ("", None)
    assert P.cluster_gpu([P.NodeType("w", 8, 1, 2)])[0] == "?"  # no instance type: model unknown


def _throughput_json(path: Path, device: str, rows: list[tuple[str, int, str, float]], size: int = 224) -> Path:
    """A file as `benchmarks/throughput.py --json` writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"device": device, "torch": "2.x", "batch": 32, "size": size, "bf16": True,
                                "channels_last": True, "equivalence_rel_diff": {},
                                "rows": [{"row": r, "frames": f, "mode": m, "clips_per_s": c, "peak_gib": 1.0,
                                          "ratio_vs_tsn": 1.0} for r, f, m, c in rows]}))
    return path


def test_network_rows_of_the_studies():
    from tdrl.config.experiment import Experiment
    from tdrl.study.definitions import get_study

    def row(study: str, key: str) -> str:
        return network(Experiment.from_flat(get_study(study).overrides(key)).model).name

    assert [row("table3", k) for k in ("tsn", "baseline", "pem", "td", "pem_td")] == [
        "tsn", "tsm", "tsm+pem", "tsm+td", "tsm+pem+td"]  # TSM + PEM is timed as itself, not as TDRL
    assert row("table5", "ratio0") == "tim" and row("table7", "lambda0") == "tim"  # TD term without weight
    assert row("table5", "ratio50") == "tim+td" and row("table6", "pem_after") == "tim+pem"


def test_paper_table3_on_aws_by_hand(tmp_path, monkeypatch):
    """Table 3 x 3 seeds on cluster/aws.yaml with a measured A10G table: every figure worked out here."""
    from tdrl.study.definitions import get_study
    from tdrl.study.trials import StudyOptions, resolve_study

    monkeypatch.chdir(tmp_path)  # data/something-something-v1 is missing: the published split sizes
    _throughput_json(tmp_path / "benchmarks" / "results" / "a10g.json", "NVIDIA A10G",
                     [("tsn", 8, "eager", 150.0), ("tsm", 8, "eager", 120.0), ("tim", 8, "eager", 110.0),
                      ("tdrl", 8, "eager", 100.0)])
    opts = StudyOptions(preset="paper", seeds=3, mlflow_uri=f"sqlite:///{tmp_path / 'none.db'}")
    plan = P.plan_trials(resolve_study(get_study("table3"), opts), cluster=AWS, repo=tmp_path)
    assert (plan.data.train, plan.data.val, plan.data.readable) == (86_017, 11_522, False)
    assert len(plan.trials) == len(plan.to_train) == 15 and plan.concurrent == 2 and plan.gpu == "A10G"
    per_epoch = 86_017 + 11_522 / 3  # validation clips at a third of a training clip
    # seconds per clip: measured rows; TSM + PEM and/or TD as TSM + what PEM + TD add to TIM (tdrl - tim)
    extra = 1 / 100 - 1 / 110
    tsn, tsm, tsm_pem = (50 * per_epoch * s / 8 for s in (1 / 150, 1 / 120, 1 / 120 + extra))
    assert tsm_pem == pytest.approx(5190.64, abs=0.01)  # 50 x 89,857.67 x (1/120 + 1/100 - 1/110) / 8
    by_row = {t.row: t.seconds for t in plan.trials}
    assert by_row == pytest.approx({"tsn": tsn, "baseline": tsm, "pem": tsm_pem, "td": tsm_pem, "pem_td": tsm_pem})
    assert plan.speed["tsm"].exact and not plan.speed["tsm+pem"].exact
    assert "upper bound" in plan.speed["tsm+pem"].note and "upper bound" not in plan.speed["tsm+pem+td"].note
    # 3 tsn + 3 tsm + 9 TSM + PEM/TD trials x 8 GPUs
    assert plan.gpu_hours == pytest.approx((3 * tsn + 3 * tsm + 9 * tsm_pem) * 8 / 3600)
    assert plan.gpu_hours == pytest.approx(159.97, abs=0.01)
    assert plan.price == pytest.approx(5.672 / 4)  # g5.12xlarge on-demand over its 4 GPUs
    assert plan.cost == pytest.approx(plan.gpu_hours * 5.672 / 4 + plan.wall_s / 3600 * 0.384)
    # 15 trials on 2 slots in grid order: the slots end at 2 tsn + tsm + 3 tsm+pem + ... : both near half the work
    assert plan.wall_s == pytest.approx(P.wall_seconds([t.seconds for t in plan.trials], 2))
    assert sum(t.seconds for t in plan.trials) / 2 <= plan.wall_s <= sum(t.seconds for t in plan.trials) / 2 + tsm_pem
    priced = P.plan_trials(resolve_study(get_study("table3"), opts), cluster=AWS, repo=tmp_path, gpu_hour_price=2.0)
    assert priced.cost == pytest.approx(priced.gpu_hours * 2.0 + priced.wall_s / 3600 * 0.384)
    text = P.format_plan(plan)
    assert "15 to train" in text and "2 trial(s) side by side" in text and "NOT READABLE" in text
    assert f"GPU-hours {plan.gpu_hours:,.1f}" in text and f"${plan.cost:,.0f}" in text


def _cluster_with(tmp_path: Path, base: str, instance: str, cpus: int, gpus: int, spot_only: bool = False) -> str:
    """cluster/<base>.yaml with its GPU worker type on ``instance`` (``spot_only``: only the spot type)."""
    import yaml

    cfg = yaml.safe_load((REPO / "cluster" / f"{base}.yaml").read_text())
    for name in ("gpu_worker", "gpu_worker_spot"):
        node = cfg["available_node_types"][name]
        node["resources"] = {"CPU": cpus, "GPU": gpus}
        node["node_config"]["InstanceType" if base == "aws" else "machineType"] = instance
    if spot_only:
        cfg["available_node_types"]["gpu_worker"]["max_workers"] = 0
    path = tmp_path / f"{base}-{instance}{'-spot' if spot_only else ''}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_table3_gpu_hours_follow_the_gpu_model(tmp_path, monkeypatch):
    """The H200 measurements carried to each cloud GPU by the stated model: the paper's Table 3 takes
    >= 3x the GPU-hours on A10Gs (g5.12xlarge) as on H100s (p5.48xlarge), >= 1.5x on A100s
    (a2-highgpu-4g) as on H100s (a3-highgpu-8g); each row at its own network's rate; the model printed."""
    from tdrl.study.definitions import get_study
    from tdrl.study.trials import StudyOptions, resolve_study

    monkeypatch.chdir(tmp_path)
    opts = StudyOptions(preset="paper", seeds=3, mlflow_uri=f"sqlite:///{tmp_path / 'none.db'}")
    study = get_study("table3")

    def plan(cluster: str) -> P.Plan:
        return P.plan_trials(resolve_study(study, opts), cluster=cluster, repo=REPO)

    g5, p5 = plan(AWS), plan(_cluster_with(tmp_path, "aws", "p5.48xlarge", 192, 8))
    a2, a3 = plan(str(REPO / "cluster" / "gcp.yaml")), plan(_cluster_with(tmp_path, "gcp", "a3-highgpu-8g", 208, 8))
    assert (g5.gpu, p5.gpu, a2.gpu, a3.gpu) == ("A10G", "H100", "A100", "H100")
    assert g5.gpu_hours >= 3 * p5.gpu_hours and a2.gpu_hours >= 1.5 * a3.gpu_hours
    for p in (g5, p5, a2, a3):
        rates = {row: sp.clips_per_s for row, sp in p.speed.items()}
        assert list(rates) == ["tsn", "tsm", "tsm+pem", "tsm+td", "tsm+pem+td"]
        assert rates["tsn"] > rates["tsm"] > rates["tsm+pem"]  # each row timed as its own network
        text = P.format_plan(p)
        assert "estimated from H200 measurements x" in text
        assert f"model     rates carried to the {p.gpu}: 29% of the H200's TSN step in convolutions" in text
    assert p5.price == pytest.approx(55.04 / 8) and a3.price == pytest.approx(88.49 / 8)
    # --clips-per-s still wins over the model
    fixed = P.plan_trials(resolve_study(study, opts), cluster=AWS, repo=REPO, clips_per_s=100.0)
    assert {sp.clips_per_s for sp in fixed.speed.values()} == {100.0}
    assert "estimated from" not in P.format_plan(fixed)


def test_a_spot_cluster_is_priced_at_spot(tmp_path, monkeypatch):
    from tdrl.study.definitions import get_study
    from tdrl.study.trials import StudyOptions, resolve_study

    monkeypatch.chdir(tmp_path)
    opts = StudyOptions(preset="paper", seeds=1, rows=("baseline",), mlflow_uri=f"sqlite:///{tmp_path / 'none.db'}")
    trials = resolve_study(get_study("table3"), opts)
    spot = P.plan_trials(trials, cluster=_cluster_with(tmp_path, "aws", "g5.12xlarge", 48, 4, True), repo=REPO)
    assert spot.price == pytest.approx(3.0607 / 4) and "g5.12xlarge spot $3.0607/h" in spot.price_source
    assert "A10G g5.12xlarge spot" in P.format_plan(spot)
    kuberay = P.plan_trials(trials, cluster=str(REPO / "cluster" / "kuberay.yaml"), repo=REPO)
    assert kuberay.gpu == "A100-80GB" and kuberay.cost is None  # the groups' gpu.product label; no instance price
    assert "pass --gpu-hour-price USD" in P.format_plan(kuberay)


def test_plan_of_an_absent_remote_root_writes_nothing(tmp_path):
    """`--plan --data file:///absent/ssv1` reads the remote manifest or annotations in memory: no
    staging lock, no file anywhere (temp, home, working folder), no traceback; the published sizes."""
    import os
    import subprocess
    import sys

    dirs = {name: tmp_path / name for name in ("tmp", "home", "work")}
    for d in dirs.values():
        d.mkdir()
    env = {**os.environ, "TMPDIR": str(dirs["tmp"]), "HOME": str(dirs["home"]), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": str(REPO), "TDRL_STAGE_DIR": str(dirs["tmp"] / "stage"), "MPLCONFIGDIR": str(dirs["home"])}
    data_before = sorted(p.name for p in (REPO / "data").iterdir()) if (REPO / "data").is_dir() else None
    proc = subprocess.run([sys.executable, "-c", "import sys; from tdrl.cli import main; sys.exit(main(sys.argv[1:]))",
                           "study", "table3", "--preset", "paper", "--seeds", "3", "--plan",
                           "--data", "file:///absent/ssv1", "--cluster", AWS],
                          cwd=dirs["work"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "file:///absent/ssv1: NOT READABLE here" in proc.stdout and "86,017 train / 11,522 val clips" in proc.stdout
    assert {name: sorted(str(p) for p in d.rglob("*")) for name, d in dirs.items()} == {n: [] for n in dirs}
    assert (sorted(p.name for p in (REPO / "data").iterdir()) if (REPO / "data").is_dir() else None) == data_before


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_plan_starts_nothing_and_counts_runs_already_in_mlflow(study_data, tmp_path, monkeypatch, capsys):
    """A trial whose configuration and seed another study trained is reported as shared; the plan
    starts no Ray, writes no file (the SQLite store included) and creates no MLflow run."""
    import ray

    import tdrl.train.cluster as cluster
    from tdrl.cli import main as tdrl_main
    from tdrl.study.definitions import get_study
    from tdrl.study.trials import StudyOptions, resolve_study
    from tdrl.train import tracking
    from study_helpers import TINY, set_args

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(cluster, "connect_ray", lambda *a, **k: pytest.fail("--plan started Ray"))
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("--plan started Ray"))
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    # Table 7's lambda 0 = Table 5's ratio 0: a finished Table 7 run of seed 0 makes that trial shared.
    opts = StudyOptions(preset="smoke", data=study_data, seeds=2, mlflow_uri=uri, rows=("ratio0", "ratio50"),
                        overrides=dict(TINY))
    ratio0 = resolve_study(get_study("table5"), opts).trials[0]
    assert (ratio0.row, ratio0.seed) == ("ratio0", 0)
    run_id, _ = tracking.find_or_create_run(
        uri, "tdrl-table7", run_name="t7", match={tracking.RUN_NAME_TAG: "t7"},
        tags={tracking.CONFIG_HASH_TAG: ratio0.config_hash, tracking.SEED_TAG: "0", tracking.PRESET_TAG: "smoke",
              tracking.STUDY_TAG: "table7", tracking.STUDY_RUN_TAG: "table7-smoke"})
    tracking.mlflow_client(uri).log_metric(run_id, "val_top1", 50.0)
    tracking.end_run(uri, run_id)
    before_files, before_runs = _snapshot(tmp_path), len(tracking.search_runs(uri, "tdrl-table7"))

    argv = ["study", "table5", "--data", study_data, "--seeds", "2", "--rows", "ratio0,ratio50", "--mlflow-uri", uri,
            "--plan", *set_args(TINY)]
    assert tdrl_main(argv) == 0
    out = capsys.readouterr().out
    assert "4 (2 row(s) x 2 seed(s)); 1 already in MLflow (0 finished, 1 shared from other studies); 3 to train" in out
    assert f"seeds to train: 1; 0: shared table7 run {run_id}" in out
    assert "64 train / 24 val clips" in out  # TINY_SYNTH: 4 classes x 16 / x 6
    assert _snapshot(tmp_path) == before_files  # nothing written: no runs/, no mlflow.db, no data
    assert len(tracking.search_runs(uri, "tdrl-table7")) == before_runs
    assert tracking.search_runs(uri, "tdrl-table5") == []  # (ray.init and connect_ray fail the test if called)

    # The same command without --plan would train: --plan on a missing store reads nothing, creates nothing.
    assert tdrl_main(["study", "table3", "--preset", "paper", "--seeds", "3", "--plan", "--cluster", AWS]) == 0
    out = capsys.readouterr().out
    assert "15 to train" in out and "2 trial(s) side by side" in out and "GPU-hours" in out and "cost" in out
    assert list(work.iterdir()) == []


def test_a_study_refuses_unreadable_data_before_ray(tmp_path, monkeypatch, capsys):
    """`--data` pointing at a folder without annotations (or the paper preset without its dataset) is
    refused with exit 2 before Ray starts, instead of starting every trial to fail."""
    from tdrl.cli import main as tdrl_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tdrl.study.runner.connect_ray", lambda *a, **k: pytest.fail("Ray started on unreadable data"))
    other = tmp_path / "not-a-dataset"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    assert tdrl_main(["study", "table5", "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tdrl study: error: data.root=") and "cannot read the train annotations" in err
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]  # never written into
    assert tdrl_main(["study", "table3", "--preset", "paper"]) == 2
    assert "something-something-v1" in capsys.readouterr().err
    assert tdrl_main(["search", "--preset", "paper", "--samples", "1"]) == 2
    assert list(p.name for p in tmp_path.iterdir()) == ["not-a-dataset"]


def test_a_fresh_data_folder_gets_the_synthetic_set(tmp_path, monkeypatch):
    """A synthetic preset generates its set at a `--data` folder that does not exist yet or is empty
    (a smoke study under `ray job submit` given an absolute path), then reads it."""
    from study_helpers import TINY_SYNTH

    from tdrl.study.definitions import get_study
    from tdrl.study.runner import prepare_study_data
    from tdrl.study.trials import StudyOptions, resolve_study
    from tdrl.train import presets

    tiny = presets.Preset("smoke", "tiny", {**presets.PRESETS["smoke"].values, "model.num_classes": 4}, dict(TINY_SYNTH))
    monkeypatch.setitem(presets.PRESETS, "smoke", tiny)
    empty = tmp_path / "empty"
    empty.mkdir()
    for root in (empty, tmp_path / "new" / "folder"):
        prepare_study_data(resolve_study(get_study("table5"), StudyOptions(preset="smoke", data=str(root))))
        labels = json.loads((root / "something-something-v2-labels.json").read_text())
        assert len(labels) == 4 and len(json.loads((root / "something-something-v2-train.json").read_text())) == 64
