"""Study tables: the runs of a study read back from MLflow, in the paper's layout, beside its numbers.

Measured numbers come only from MLflow runs: the FINISHED child runs of a study's parent run, one
per row and seed, each holding the last epoch's ``val_top1``/``val_top5``/``train_top1``. Rows are
averaged over seeds (mean and sample standard deviation, ``ddof=1``; one seed gives no std). Every
row is also compared with its study's baseline row, paired by seed (:mod:`tdrl.study.stats`): the
mean difference, its 95 % t interval and a paired t-test's p-value, beside the paper's difference,
and that p adjusted by Holm's method over the table's comparisons (every row with a p-value against
the baseline, the TSN reference included: the family is what the table prints).
A row whose runs were shared from another study (same configuration and seed, trained once) says so.

Output: Markdown, CSV (the same numbers) and a PNG chart of the differences to the baseline (the
absolute accuracies of a synthetic set and of Something-Something V1 share no scale; differences
can be compared), written to a folder, printed, and logged as artifacts on the parent run.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from tdrl.config.base import ConfigError
from tdrl.study.definitions import STUDIES, Study, get_study
from tdrl.study.family import Entry, family_frame, family_markdown
from tdrl.study.naming import EXPERIMENT_PREFIX, TABLES_DIR, experiment_name, trial_label
from tdrl.study.search_report import log_search_report, ranked_trials, search_backbone, short
from tdrl.study.search_space import optuna_distributions, td_block_choices
from tdrl.study.stats import CONFIDENCE, TEST_NAME, Paired, fmt_difference, fmt_p, holm, paired_difference
from tdrl.train.tracking import (BATCH_LIMIT, ROLE_TAG, ROW_TAG, SCORE, SEED_TAG, SHARED_STUDY_TAG, STUDY_RUN_TAG,
                                 child_runs, find_run, get_run, log_artifacts, mlflow_client, tracking_uri, with_retry)

METRICS = {"top1": SCORE, "top5": "val_top5", "train_top1": "train_top1"}


def find_parent_run(uri: str, experiment: str, study_run: str | None = None) -> str | None:
    """The newest parent run of ``experiment`` (optionally the one named ``study_run``), or None."""
    tags = {ROLE_TAG: "study", **({STUDY_RUN_TAG: study_run} if study_run else {})}
    return find_run(uri, experiment, tags=tags, newest=True)


def runs_to_records(runs: pd.DataFrame) -> pd.DataFrame:
    """MLflow's run DataFrame -> one line per finished run: ``row``, ``seed``, ``top1``, ``top5``,
    ``train_top1``, ``shared`` (the study a shared run was trained in, else empty), ``status``, ``run_id``."""
    cols = {"row": f"tags.{ROW_TAG}", "seed": f"tags.{SEED_TAG}",
            **{k: f"metrics.{v}" for k, v in METRICS.items()},
            "shared": f"tags.{SHARED_STUDY_TAG}", "status": "status", "run_id": "run_id"}
    if runs is None or runs.empty:
        return pd.DataFrame(columns=list(cols))
    out = pd.DataFrame({k: (runs[v] if v in runs.columns else None) for k, v in cols.items()})
    out["shared"] = out["shared"].fillna("")
    return out[out["status"] == "FINISHED"].reset_index(drop=True)


# --- the table ------------------------------------------------------------------------------------

TABLE_COLUMNS = ["key", "row", "n", "paper_top1", "top1_mean", "top1_std", "paper_top5", "top5_mean", "top5_std",
                 "train_top1_mean", "paper_diff", "diff_n", "diff_mean", "diff_low", "diff_high", "diff_p",
                 "diff_p_holm", "significant", "shared"]


def _by_seed(sub: pd.DataFrame, metric: str) -> dict[int, float]:
    """``{seed: value}`` of one row's runs (a seed run twice keeps its last record)."""
    vals = pd.to_numeric(sub[metric], errors="coerce") if metric in sub else pd.Series(dtype=float)
    seeds = pd.to_numeric(sub["seed"], errors="coerce") if "seed" in sub else pd.Series(dtype=float)
    return {int(k): float(v) for k, v in zip(seeds, vals) if pd.notna(k) and pd.notna(v)}


def build_table(study: Study, records: pd.DataFrame) -> pd.DataFrame:
    """One line per study row, in the paper's order: paper numbers beside measured mean/std, the
    paired difference to the baseline row (:func:`tdrl.study.stats.paired_difference`), the paper's
    difference, mean training top-1, the number of seeds and where shared runs came from.

    ``records`` has columns ``row`` (row key), ``seed``, ``top1`` and optionally ``top5``,
    ``train_top1``, ``shared`` (one line per run). Rows without runs get NaN and ``n = 0``; records
    of unknown rows are ignored.
    """
    def sub_of(key: str) -> pd.DataFrame:
        return records[records["row"] == key] if len(records) else records

    base_row = study.row(study.baseline)
    base = _by_seed(sub_of(base_row.key), "top1")
    lines = []
    for r in study.rows:
        sub = sub_of(r.key)
        line: dict[str, Any] = {"key": r.key, "row": r.label}
        for metric, paper in (("top1", r.paper_top1), ("top5", r.paper_top5), ("train_top1", None)):
            vals = list(_by_seed(sub, metric).values())
            if metric != "train_top1":
                line[f"paper_{metric}"] = float("nan") if paper is None else float(paper)
            line[f"{metric}_mean"] = float(pd.Series(vals).mean()) if vals else float("nan")
            if metric != "train_top1":
                line[f"{metric}_std"] = float(pd.Series(vals).std(ddof=1)) if len(vals) > 1 else float("nan")
        line["n"] = len(_by_seed(sub, "top1"))
        known = r.paper_top1 is not None and base_row.paper_top1 is not None
        line["paper_diff"] = float(r.paper_top1 - base_row.paper_top1) if known else float("nan")
        if r.key == base_row.key:
            line.update(diff_n=0, diff_mean=float("nan"), diff_low=float("nan"), diff_high=float("nan"),
                        diff_p=float("nan"), significant=False)
        else:
            d = paired_difference(_by_seed(sub, "top1"), base)
            line.update(diff_n=d.n, diff_mean=d.mean, diff_low=d.low, diff_high=d.high, diff_p=d.p,
                        significant=d.significant)
        shared = sorted({str(x) for x in sub["shared"] if str(x)}) if "shared" in sub else []
        line["shared"] = ",".join(shared)
        lines.append(line)
    for line, adjusted in zip(lines, holm([line["diff_p"] for line in lines])):
        line["diff_p_holm"] = adjusted
    return pd.DataFrame(lines, columns=TABLE_COLUMNS)


def fmt_measured(mean: float, std: float, digits: int = 1) -> str:
    """``48.4 ± 0.3``; ``48.4`` for one run; ``–`` for none."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_paper(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1f}"


def _cell_diff(t: pd.Series) -> str:
    return fmt_difference(Paired(int(t["diff_n"]), t["diff_mean"], t["diff_low"], t["diff_high"], t["diff_p"]))


def to_markdown(study: Study, table: pd.DataFrame, *, caption: str = "") -> str:
    """The paper's layout: its row labels and header, the paper's numbers, then the measured ones,
    then each row's difference to the baseline (paper, and measured with interval and p-value)."""
    top5 = study.has_top5 or table["top5_mean"].notna().any()
    head = [study.row_header, "Top-1 paper", "Top-1 measured", "Δ paper", "Δ measured [95% CI]", "p",
            "p Holm", "Train top-1", "seeds"]
    if top5:
        head[3:3] = ["Top-5 paper", "Top-5 measured"]
    lines = [f"**{study.title}**" + (f" — {caption}" if caption else ""), "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for _, t in table.iterrows():
        is_base = t["key"] == study.baseline
        cells = [str(t["row"]) + (" (baseline)" if is_base else ""), fmt_paper(t["paper_top1"]),
                 fmt_measured(t["top1_mean"], t["top1_std"])]
        if top5:
            cells += [fmt_paper(t["paper_top5"]), fmt_measured(t["top5_mean"], t["top5_std"])]
        cells += ["" if is_base else _fmt_signed(t["paper_diff"]), "" if is_base else _cell_diff(t),
                  "" if is_base else fmt_p(t["diff_p"]), "" if is_base else fmt_p(t["diff_p_holm"]),
                  fmt_measured(t["train_top1_mean"], float("nan")),
                  str(int(t["n"])) + (f" (shared: {t['shared']})" if t["shared"] else "")]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"Paper: Something-Something V1 validation, 8 frames, single clip (%). Measured: last-epoch "
             f"validation accuracy (%), mean ± std over seeds; train top-1 is the last epoch's running "
             f"training accuracy. Δ: row − baseline in points; measured Δ is paired by seed, with its "
             f"{CONFIDENCE:.0%} t interval ({TEST_NAME} for p); * marks an interval that excludes 0. "
             f"p Holm: p adjusted by Holm's method over this table's comparisons with its baseline. "
             f"A row \"shared\" with another study reuses that study's runs of the same configuration "
             f"and seed."]
    if study.note:
        notes.append(study.note)
    return "\n".join(lines + [""] + notes) + "\n"


def _fmt_signed(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.1f}"


def frame_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """A plain Markdown table of a DataFrame (no ``tabulate`` needed)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "–" if math.isnan(v) else f"{v:.{digits}g}"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def chart_frame(study: Study, table: pd.DataFrame) -> pd.DataFrame:
    """The chart's input, one line per row that is neither the baseline nor a reference (TSN, whose
    difference would set the scale): ``row``, ``measured`` (paired mean difference), ``low``/``high``
    (its interval; NaN with one seed), ``paper`` (the paper's difference)."""
    rest = table[~table["key"].isin([study.baseline, *study.references])]
    return pd.DataFrame({"row": rest["row"].to_numpy(), "measured": rest["diff_mean"].to_numpy(),
                         "low": rest["diff_low"].to_numpy(), "high": rest["diff_high"].to_numpy(),
                         "paper": rest["paper_diff"].to_numpy()})


def save_chart(study: Study, table: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """PNG chart of each row's top-1 difference to the baseline: measured (95 % interval as error bar)
    beside the paper's (:func:`tdrl.viz.study_chart.save_difference_chart`)."""
    from tdrl.viz.study_chart import save_difference_chart  # matplotlib: not on `tdrl tables --help`'s path

    base = study.row(study.baseline).label
    return save_difference_chart(chart_frame(study, table), path, title=title or study.title,
                                 ylabel=f"top-1 difference to {base} (points)")


def write_outputs(study: Study, table: pd.DataFrame, out_dir: str | Path, *, caption: str = "",
                  records: pd.DataFrame | None = None) -> dict[str, Path]:
    """``<study>.md``, ``<study>.csv`` and ``<study>.png`` in ``out_dir`` (and ``<study>_runs.csv``, one
    line per run, when ``records`` are given, so the statistics can be recomputed); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if records is not None:
        paths["runs"] = out / f"{study.name}_runs.csv"
        keep = [c for c in ("row", "seed", "top1", "top5", "train_top1", "shared", "run_id") if c in records]
        runs = records[keep].assign(seed=pd.to_numeric(records["seed"], errors="coerce").astype("Int64"))
        runs.sort_values(["row", "seed"]).to_csv(paths["runs"], index=False)
    md = out / f"{study.name}.md"
    md.write_text(to_markdown(study, table, caption=caption))
    csv = out / f"{study.name}.csv"
    table.to_csv(csv, index=False)
    png = save_chart(study, table, out / f"{study.name}.png", title=f"{study.title}" + (f"\n{caption}" if caption else ""))
    return {"markdown": md, "csv": csv, "png": png, **paths}


def study_table(study: Study, uri: str, *, experiment: str | None = None, parent_run_id: str | None = None,
                study_run: str | None = None) -> tuple[pd.DataFrame, str | None, pd.DataFrame]:
    """The table of a study's (newest, or given) parent run; ``(table, parent_run_id, records)``."""
    experiment = experiment or experiment_name(study.name)
    parent_run_id = parent_run_id or find_parent_run(uri, experiment, study_run)
    if parent_run_id is None:
        records = runs_to_records(pd.DataFrame())
        return build_table(study, records), None, records
    records = runs_to_records(child_runs(uri, experiment, parent_run_id))
    return build_table(study, records), parent_run_id, records


def report(study: Study, uri: str, out_dir: str | Path, *, experiment: str | None = None,
           parent_run_id: str | None = None, study_run: str | None = None, log: bool = True,
           echo: bool = True) -> tuple[pd.DataFrame, str | None, dict[str, Path]]:
    """Read, write (md/csv/png), print, and log the files as artifacts (``tables/``) on the parent run."""
    table, parent, records = study_table(study, uri, experiment=experiment, parent_run_id=parent_run_id,
                                         study_run=study_run)
    caption = ""
    if parent is not None:
        run = get_run(uri, parent)
        caption = run.data.tags.get(STUDY_RUN_TAG, "") or run.info.run_name or ""
    paths = write_outputs(study, table, out_dir, caption=caption, records=records)
    if echo:
        print(paths["markdown"].read_text())
        if parent is None:
            print(f"(no study run of {study.name} in {experiment or experiment_name(study.name)} at {uri})")
    if log and parent is not None:
        log_artifacts(uri, parent, paths.values(), artifact_path="tables")
        log_table_metrics(uri, parent, table)
        name_child_runs(uri, experiment or experiment_name(study.name), parent, study)
    return table, parent, paths


# --- the table in the MLflow UI ---------------------------------------------------------------------

# Parent-run metric prefix -> table column: ``top1.ratio50`` is row ratio50's mean top-1 over its seeds.
PARENT_METRICS = {"top1": "top1_mean", "top1_std": "top1_std", "top5": "top5_mean", "top5_std": "top5_std",
                  "top1_diff": "diff_mean", "train_top1": "train_top1_mean"}


def table_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The table's measured cells as metric names and values (``top1.ratio50``, ``top1_std.ratio50``,
    ``top1_diff.ratio50`` = paired difference to the baseline); empty cells (NaN) are left out."""
    out: dict[str, float] = {}
    for _, t in table.iterrows():
        for prefix, column in PARENT_METRICS.items():
            value = t[column]
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out[f"{prefix}.{t['key']}"] = float(value)
    return out


def log_table_metrics(uri: str, run_id: str, table: pd.DataFrame) -> dict[str, float]:
    """Log :func:`table_metrics` on the study's parent run (step 0), so the parent's own charts show
    the table; a later report logs the new values, which MLflow shows as the latest. Returns them."""
    from mlflow.entities import Metric  # seconds to import: not on `tdrl tables --help`'s path

    values = table_metrics(table)
    now = int(time.time() * 1000)
    items = [Metric(k, v, now, 0) for k, v in sorted(values.items())]
    client = mlflow_client(uri)
    for i in range(0, len(items), BATCH_LIMIT):
        batch = items[i:i + BATCH_LIMIT]
        with_retry(lambda: client.log_batch(run_id, metrics=batch), uri)
    return values


def name_child_runs(uri: str, experiment: str, parent_run_id: str, study: Study) -> int:
    """Name the parent's child runs as the table reads (``+50% TDLoss · seed 0``), where they are not
    yet (runs of older tdrl were named by their unique trial name, which stays their ``tdrl.run_name``
    tag; runs are found again by that tag, never by name). Returns how many were renamed."""
    runs = child_runs(uri, experiment, parent_run_id)
    keys = {r.key for r in study.rows}
    renamed = 0
    for _, r in runs.iterrows():
        row, seed = r.get(f"tags.{ROW_TAG}"), r.get(f"tags.{SEED_TAG}")
        if row not in keys or seed is None or pd.isna(seed):
            continue
        label = trial_label(study.row(row).label, {}, int(seed))
        if r["run_name"] != label:
            with_retry(lambda: mlflow_client(uri).update_run(r["run_id"], name=label), uri)
            renamed += 1
    return renamed


def read_runs_csv(path: Path) -> pd.DataFrame:
    """A ``<study>_runs.csv`` as :func:`write_outputs` writes it, back as records."""
    records = pd.read_csv(path, dtype={"row": str, "shared": str}, keep_default_na=False,
                          na_values={c: [""] for c in ("seed", *METRICS)})
    missing = {"row", "seed", "top1"} - set(records.columns)
    if missing:
        raise ConfigError(f"{path} lacks the column(s) {', '.join(sorted(missing))}; it should be the per-run "
                          f"file `tdrl tables` writes")
    return records


def family_entries(study: Study, records: pd.DataFrame) -> list:
    """The study's component comparisons (every row but the baseline and the references) as
    :class:`tdrl.study.family.Entry`, top-1 by seed."""
    def by_seed(key: str) -> dict[int, float]:
        return _by_seed(records[records["row"] == key] if len(records) else records, "top1")

    base = by_seed(study.baseline)
    return [Entry(study.name, r.label, by_seed(r.key), base) for r in study.rows
            if r.key != study.baseline and r.key not in study.references]


def report_family(studies: Iterable[Study], runs_dir: Path, out_dir: str | Path) -> Path | None:
    """``family.md``/``family.csv`` in ``out_dir``: every component comparison of the studies whose
    ``<study>_runs.csv`` is in ``runs_dir``, adjusted together (:mod:`tdrl.study.family`); printed."""
    entries, table_holm = [], {}
    for study in studies:
        path = runs_dir / f"{study.name}_runs.csv"
        if not path.is_file():
            continue
        records = read_runs_csv(path)
        entries += family_entries(study, records)
        table = build_table(study, records)
        table_holm.update({(study.name, row): p for row, p in zip(table["row"], table["diff_p_holm"])})
    if not entries:
        return None
    frame = family_frame(entries, table_holm)
    out = Path(out_dir)
    frame.to_csv(out / "family.csv", index=False)
    md = out / "family.md"
    md.write_text("**Every comparison with a baseline, as one family**\n\n" + family_markdown(frame))
    print(md.read_text())
    return md


def report_from_runs(studies: Iterable[Study], runs_dir: Path, out_dir: str | Path, *, caption: str = "",
                     explicit: bool = True) -> int:
    """Rebuild tables from per-run files (``<study>_runs.csv``, as :func:`write_outputs` writes them)
    instead of MLflow: the statistics of a committed results folder can be recomputed without its
    store. A named study without its file is an error; with no study named, the files present are used."""
    found = 0
    for study in studies:
        path = runs_dir / f"{study.name}_runs.csv"
        if not path.is_file():
            if explicit:
                raise ConfigError(f"--from-runs: {path} does not exist; it is the per-run file `tdrl tables` "
                                  f"writes beside {study.name}.md")
            continue
        records = read_runs_csv(path)
        paths = write_outputs(study, build_table(study, records), out_dir, caption=caption, records=records)
        print(paths["markdown"].read_text())
        found += 1
    if not found:
        print(f"no <study>_runs.csv files in {runs_dir}")
        return 1
    print(f"tables written to {Path(out_dir).resolve()}")
    return 0


def report_search_tables(uri: str, experiment: str, study_run: str | None, out_dir: Path, log: bool = True) -> int:
    """``tdrl tables search``: the newest (or named) search's trials best first (``search_trials.md``/
    ``.csv``), its parameter importances and figures (:mod:`tdrl.study.search_report`), written to
    ``out_dir/<search run>``, printed, and logged on its parent run. 1 when there is no search run."""
    parent = find_parent_run(uri, experiment, study_run)
    if parent is None:
        print(f"no search run{f' named {study_run}' if study_run else ''} in {experiment} at {uri}")
        return 1
    name = get_run(uri, parent).data.tags.get(STUDY_RUN_TAG, parent)
    out = out_dir / name
    out.mkdir(parents=True, exist_ok=True)
    runs = child_runs(uri, experiment, parent)
    backbone = search_backbone(runs)
    trials = ranked_trials(runs, list(optuna_distributions(backbone)))
    trials.to_csv(out / "search_trials.csv", index=False)  # the exact values; the Markdown is for reading
    choices = td_block_choices(backbone)
    shown = trials.assign(**{"model.td_lambda": [f"{float(v):.2e}" for v in trials["model.td_lambda"]],
                             "model.td_blocks": [{v: k for k, v in choices.items()}.get(v, v)
                                                 for v in trials["model.td_blocks"]]})
    shown.columns = [short(c) for c in shown.columns]
    md = out / "search_trials.md"
    md.write_text(f"**The search's trials, best first** — {name}\n\n" + frame_markdown(shown) + "\n\ntd_blocks: "
                  + "; ".join(f"{k} = {v}" for k, v in choices.items()) + f" ({backbone}). Exact values: "
                  f"search_trials.csv.\n")
    print(md.read_text())
    log_search_report(uri, experiment, parent, out, caption=name, log=log)
    if log:
        log_artifacts(uri, parent, [out / "search_trials.csv", md], artifact_path="search")
    print(f"search report written to {out.resolve()}")
    return 0


# --- `tdrl tables` ---------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("studies", nargs="*", metavar="STUDY",
                        help=f"studies to tabulate: {', '.join(STUDIES)} or script names (default: all with runs); "
                             f"'search' reports the newest Optuna search (trials, importances, figures)")
    parser.add_argument("--mlflow-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--out", default=TABLES_DIR, help="folder for the .md/.csv/.png files")
    parser.add_argument("--name", default=None, help="study run name (e.g. table5-smoke); default: the newest")
    parser.add_argument("--parent-run-id", default=None, help="parent run id (one study only)")
    # the spelling before every command used --parent-run-id (tdrl.cli's docstring); hidden, still accepted
    parser.add_argument("--parent-run", dest="parent_run_id", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--experiment-prefix", default=EXPERIMENT_PREFIX, help="MLflow experiments are PREFIX-<study>")
    parser.add_argument("--no-log", action="store_true", help="do not log the files on the parent run")
    parser.add_argument("--family", action="store_true",
                        help="also write family.md/.csv: every comparison with a baseline across the studies, "
                             "Holm-adjusted together, with the seeds each would need (tdrl/study/family.py)")
    parser.add_argument("--from-runs", default=None, metavar="DIR",
                        help="read each study's runs from DIR/<study>_runs.csv (the per-run file this command "
                             "writes, e.g. docs/results) instead of MLflow; --name is then the caption")


def run(args) -> int:
    uri = tracking_uri(args.mlflow_uri)
    if "search" in args.studies:  # the Optuna search is no grid: its own report
        code = report_search_tables(uri, f"{args.experiment_prefix}-search", args.name, Path(args.out),
                                    log=not args.no_log)
        args.studies = [s for s in args.studies if s != "search"]
        if not args.studies:
            return code
    try:
        studies = [get_study(s) for s in args.studies] if args.studies else list(STUDIES.values())
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from exc
    if args.parent_run_id and len(studies) != 1:
        raise ConfigError("--parent-run-id needs exactly one STUDY")
    if args.from_runs:
        code = report_from_runs(studies, Path(args.from_runs), args.out, caption=args.name or "",
                                explicit=bool(args.studies))
        if args.family and code == 0:
            report_family(studies, Path(args.out), args.out)
        return code
    found = 0
    for study in studies:
        exp = experiment_name(study.name, args.experiment_prefix)
        if not args.studies and find_parent_run(uri, exp, args.name) is None:
            continue  # "all": only the studies that were run
        _, parent, _ = report(study, uri, args.out, experiment=exp, parent_run_id=args.parent_run_id,
                              study_run=args.name, log=not args.no_log)
        found += parent is not None
    if not found:
        print(f"no study runs found at {uri}")
        return 1
    if args.family:
        report_family(studies, Path(args.out), args.out)
    print(f"tables written to {Path(args.out).resolve()}")
    return 0
