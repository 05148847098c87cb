"""The paper's ablation tables (Tables 3-7) and the memory-initialisation study as data.

A study is a fixed grid: each row is a set of flat ``model.*`` overrides layered over the study's
common overrides, which are layered over a preset's :class:`~tdrl.config.experiment.Experiment`.
Every row names the paper's numbers (Something-Something V1 validation, 8 frames, single clip,
top-1/top-5 %; ``None`` where the paper gives none). Nothing here runs anything or holds a
measured number: measured numbers are read back from MLflow (:mod:`tdrl.study.tables`).

The rows follow the paper's text: Tables 3/4 toggle PEM and the TD loss on a TSM/TIM network;
Table 5 sweeps the TD channel ratio with TIM + TD loss and no PEM (0 % is the TIM baseline);
Table 6 puts PEM (no TD loss) or the TD loss (no PEM) before/after TM; Table 7 sweeps lambda with
TIM + TD loss and no PEM (lambda 0 is the TIM baseline, 2e-4 equals Table 4's "+TDLoss" row).
The memory study is the full TDRL network (TIM + PEM + TD loss) with the three initialisations.

Tables 3 and 4 also carry a ``tsn`` reference row the paper does not have: the same backbone with
no temporal module, no enhancement and no TD loss. It shows how much of a table's accuracy needs
temporal modelling at all (on the synthetic benchmark a frame-order-blind network is capped at the
pair ceiling). Each study names its ``baseline`` row: ``tdrl tables`` reports every other row's
paired difference to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# The TIM baseline, stated in full so a row never depends on a preset's model defaults.
TIM_BASELINE: dict[str, Any] = {
    "model.temporal": "tim",
    "model.enhance": "none",
    "model.enhance_position": "before",
    "model.mem_init": "last",
    "model.td_ratio": 0.0,
    "model.td_position": "after",
    "model.td_lambda": 2e-4,
}
TSN = {"model.temporal": "none", "model.enhance": "none", "model.td_ratio": 0.0}
PEM = {"model.enhance": "pem"}
TD = {"model.td_ratio": 0.5}  # paper default: half the channels, after TM, lambda 2e-4


@dataclass(frozen=True)
class Row:
    """One line of a table: its label as printed in the paper and what it changes."""

    key: str  # short identifier, safe in run names and tags (letters, digits, '-', '_')
    label: str  # the paper's row label
    overrides: Mapping[str, Any]
    paper_top1: float | None = None
    paper_top5: float | None = None


@dataclass(frozen=True)
class Study:
    """A table of the paper as a runnable grid."""

    name: str  # "table5"; also the MLflow experiment suffix and the CLI name
    title: str  # the paper's caption
    row_header: str  # the paper's first column header ("Method", "Order", "λ")
    rows: tuple[Row, ...]
    common: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    script: str = ""  # studies/<script>.py
    baseline: str = "baseline"  # the row the others are compared with (paired by seed)
    references: tuple[str, ...] = ()  # rows that are not components of the method (TSN): in the table, not the chart

    def __post_init__(self) -> None:
        self.row(self.baseline)  # a study always names one of its rows as baseline

    def row(self, key: str) -> Row:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"study {self.name} has no row {key!r}; rows: {', '.join(r.key for r in self.rows)}")

    def overrides(self, key: str) -> dict[str, Any]:
        """Flat overrides of a row: the study's common keys, then the row's own."""
        return {**self.common, **self.row(key).overrides}

    @property
    def has_top5(self) -> bool:
        return any(r.paper_top5 is not None for r in self.rows)


def _row(key: str, label: str, top1: float | None, top5: float | None = None, **over: Any) -> Row:
    flat = {f"model.{k}": v for k, v in over.items()}
    return Row(key, label, flat, top1, top5)


TABLE3 = Study(
    name="table3", title="Table 3: Ablation Study - TSM (%)", row_header="Method", script="ablation_tsm",
    references=("tsn",),
    common={**TIM_BASELINE, "model.temporal": "tsm"},
    rows=(
        _row("tsn", "TSN (no TM; not in the paper)", None, None, **{k[6:]: v for k, v in TSN.items()}),
        _row("baseline", "baseline [10]", 45.6, 74.2),
        _row("pem", "+PEM", 48.1, 77.4, enhance="pem"),
        _row("td", "+TDLoss", 47.5, 76.8, td_ratio=0.5),
        _row("pem_td", "+PEM+TDLoss", 48.4, 77.4, enhance="pem", td_ratio=0.5),
    ))

TABLE4 = Study(
    name="table4", title="Table 4: Ablation Study - TIM (%)", row_header="Method", script="ablation_tim",
    references=("tsn",),
    common=dict(TIM_BASELINE),
    rows=(
        _row("tsn", "TSN (no TM; not in the paper)", None, None, **{k[6:]: v for k, v in TSN.items()}),
        _row("baseline", "baseline [11]", 46.1, 74.7),
        _row("mem", "+MEM [11]", 47.4, 76.6, enhance="mem"),
        _row("pem", "+PEM", 48.7, 77.8, enhance="pem"),
        _row("td", "+TDLoss", 48.4, 77.3, td_ratio=0.5),
        _row("pem_td", "+PEM+TDLoss", 49.8, 78.1, enhance="pem", td_ratio=0.5),
    ))

TABLE5 = Study(
    name="table5", title="Table 5: TDLoss Ratio (%)", row_header="Method", script="ablation_ratio",
    common=dict(TIM_BASELINE), baseline="ratio0",
    rows=(
        _row("ratio0", "baseline", 46.1, td_ratio=0.0),
        _row("ratio25", "+25% TDLoss", 47.7, td_ratio=0.25),
        _row("ratio50", "+50% TDLoss", 48.4, td_ratio=0.5),
        _row("ratio75", "+75% TDLoss", 47.8, td_ratio=0.75),
        _row("ratio100", "+100% TDLoss", 47.3, td_ratio=1.0),
    ))

TABLE6 = Study(
    name="table6", title="Table 6: Block Position", row_header="Order", script="ablation_position",
    common=dict(TIM_BASELINE), baseline="tm",
    rows=(
        _row("tm", "TM", 46.1),
        _row("pem_before", "PEM B. TM", 48.7, enhance="pem", enhance_position="before"),
        _row("pem_after", "PEM A. TM", 49.0, enhance="pem", enhance_position="after"),
        _row("td_before", "TDLoss B. TM", 46.9, td_ratio=0.5, td_position="before"),
        _row("td_after", "TDLoss A. TM", 48.4, td_ratio=0.5, td_position="after"),
    ))

TABLE7 = Study(
    name="table7", title="Table 7: Impact of λ (%)", row_header="λ", script="ablation_lambda",
    common={**TIM_BASELINE, **TD}, baseline="lambda0",
    rows=(
        _row("lambda0", "0×10^-4", 46.1, td_lambda=0.0),
        _row("lambda1e-4", "1×10^-4", 47.9, td_lambda=1e-4),
        _row("lambda2e-4", "2×10^-4", 48.4, td_lambda=2e-4),
        _row("lambda3e-4", "3×10^-4", 47.8, td_lambda=3e-4),
        _row("lambda4e-4", "4×10^-4", 48.0, td_lambda=4e-4),
    ))

MEMINIT = Study(
    name="meminit", title="PEM memory initialisation m_0 (paper, Sec. 3: no numbers given)",
    row_header="m_0", script="ablation_meminit",
    common={**TIM_BASELINE, **PEM, **TD}, baseline="last",
    note="The paper only states that d_{T-1} is slightly better than zeros or d_1.",
    rows=(
        _row("last", "d_{T-1} (paper)", None, mem_init="last"),
        _row("first", "d_1", None, mem_init="first"),
        _row("zeros", "zeros", None, mem_init="zeros"),
    ))

STUDIES: dict[str, Study] = {s.name: s for s in (TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, MEMINIT)}
# Names people type: the script names and "tsm"/"tim"/... map to the table names.
ALIASES: dict[str, str] = {
    **{s.script: s.name for s in STUDIES.values()},
    **{s.script.removeprefix("ablation_"): s.name for s in STUDIES.values()},
    "3": "table3", "4": "table4", "5": "table5", "6": "table6", "7": "table7",
}


def get_study(name: str) -> Study:
    """A study by name ("table5"), script name ("ablation_ratio") or short name ("ratio", "5")."""
    key = ALIASES.get(name, name)
    if key not in STUDIES:
        raise KeyError(f"unknown study {name!r}; studies: {', '.join(STUDIES)}")
    return STUDIES[key]
