"""The study definitions against the paper itself: Tables 3-7 are parsed from
``../shared/paper/tdrl-eccv2020.txt`` (nothing restated here) and every row's paper numbers and
configuration are checked against them.

Configuration: each paper row label says what the row is ("+PEM", "+MEM [11]", "+25% TDLoss",
"PEM A. TM", "3×10^{-4}"); the label is read into the overrides it means on the table's temporal
module (Table 3: TSM, from its caption; the others: TIM, the paper's TM) and the built network is
compared with the row's. Rows the paper does not have (a ``tsn`` baseline, the memory-init study)
must carry no paper numbers.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from tdrl.config.experiment import Experiment
from tdrl.config.model import ModelConfig
from tdrl.study.definitions import STUDIES

# ../shared relative to the repository root (tests/study/ -> parents[2] is the root).
PAPER = Path(__file__).resolve().parents[2] / ".." / "shared" / "paper" / "tdrl-eccv2020.txt"
ABLATIONS = (3, 4, 5, 6, 7)


def parse_tables(text: str) -> dict[int, dict]:
    """``{n: {"caption", "header", "rows": [(label, [numbers...]), ...]}}`` for every table whose
    cells follow its caption line as tab-separated lines. Several captions on one line ("Table 3: ...
    Table 4: ...") share the blocks below: one block each, or one block whose columns split evenly."""
    lines = text.splitlines()
    tables: dict[int, dict] = {}
    for i, line in enumerate(lines):
        found = list(re.finditer(r"Table (\d+):", line))
        if not found or "\t" in line:
            continue
        captions = [(int(m.group(1)), line[m.end():(found[k + 1].start() if k + 1 < len(found) else None)].strip())
                    for k, m in enumerate(found)]
        blocks: list[list[list[str]]] = []
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or "\t" in lines[j]):
            if "\t" in lines[j]:
                if not blocks or not lines[j - 1].strip():
                    blocks.append([])
                blocks[-1].append(lines[j].split("\t"))
            j += 1
        if not blocks:
            continue
        if len(blocks) == 1 and len(captions) > 1:
            width = len(blocks[0][0]) // len(captions)
            blocks = [[row[k * width:(k + 1) * width] for row in blocks[0]] for k in range(len(captions))]
        if len(blocks) != len(captions):
            continue
        for (n, caption), block in zip(captions, blocks):
            tables[n] = {"caption": caption, "header": block[0],
                         "rows": [(r[0].strip(), [_number(c) for c in r[1:]]) for r in block[1:]]}
    return tables


def _number(cell: str) -> float | None:
    """A table cell as a number; None for "–", "N/A" and the like (Tables 1-2 have them)."""
    try:
        return float(cell)
    except ValueError:
        return None


def norm_label(label: str) -> str:
    """Labels as written in definitions.py and in the paper's LaTeX-ish text compare equal."""
    return re.sub(r"\s+", " ", label.replace("{", "").replace("}", "")).strip()


def meaning(table: int, label: str, caption: str) -> dict:
    """The model overrides a paper row label stands for (paper Sec. 4.4-4.5), on top of the TIM
    baseline: TD loss means half the channels after TM with lambda 2e-4 unless the label says else."""
    over: dict = {"model.temporal": "tsm" if "TSM" in caption else "tim", "model.enhance": "none",
                  "model.enhance_position": "before", "model.mem_init": "last", "model.td_ratio": 0.0,
                  "model.td_position": "after", "model.td_lambda": 2e-4}
    text = norm_label(label)
    td = {"model.td_ratio": 0.5}
    if m := re.fullmatch(r"(\d+)×10\^-4", text):  # Table 7: lambda, TD loss on
        return {**over, **td, "model.td_lambda": float(f"{m.group(1)}e-4")}
    if m := re.fullmatch(r"\+(\d+)% TDLoss", text):  # Table 5: ratio
        return {**over, "model.td_ratio": int(m.group(1)) / 100}
    if m := re.fullmatch(r"(PEM|TDLoss) (B|A)\. TM", text):  # Table 6: position
        pos = "before" if m.group(2) == "B" else "after"
        if m.group(1) == "PEM":
            return {**over, "model.enhance": "pem", "model.enhance_position": pos}
        return {**over, **td, "model.td_position": pos}
    text = re.sub(r"\s*\[\d+\]", "", text)  # citations: "baseline [10]", "+MEM [11]"
    if text in ("baseline", "TM"):
        return over
    parts = [p for p in text.split("+") if p]
    known = {"PEM": {"model.enhance": "pem"}, "MEM": {"model.enhance": "mem"}, "TDLoss": td}
    assert parts and all(p in known for p in parts), f"Table {table}: cannot read the row label {label!r}"
    for p in parts:
        over.update(known[p])
    return over


def science(model: ModelConfig) -> ModelConfig:
    """``model`` with the fields that cannot matter made canonical: no enhancement has no position or
    memory, MEM has no memory, a TD loss with ratio 0 or lambda 0 is no TD loss."""
    if model.enhance == "none":
        model = replace(model, enhance_position="before", mem_init="last")
    elif model.enhance == "mem":
        model = replace(model, mem_init="last")
    if model.td_ratio == 0 or model.td_lambda == 0 or not model.td_blocks:
        model = replace(model, td_ratio=0.0, td_lambda=0.0, td_position="after", td_blocks=())
    return model


def row_model(study, key: str) -> ModelConfig:
    return science(Experiment().override(study.overrides(key)).model)


@pytest.fixture(scope="module")
def paper() -> dict[int, dict]:
    if not PAPER.is_file():
        pytest.skip(f"the paper's text is not at {PAPER.resolve()} (expected ../shared/paper next to the repository)")
    tables = parse_tables(PAPER.read_text(encoding="utf-8"))
    missing = [n for n in ABLATIONS if n not in tables]
    assert not missing, f"could not parse Table(s) {missing} from {PAPER}"
    return tables


def test_parser_reads_the_ablation_tables(paper):
    """The parse itself: headers and row counts of the five ablation tables, 33 numbers in all."""
    assert [paper[n]["header"][0] for n in ABLATIONS] == ["Method", "Method", "Method", "Order", "λ"]
    assert [len(paper[n]["rows"]) for n in ABLATIONS] == [4, 5, 5, 5, 5]
    assert sum(len(nums) for n in ABLATIONS for _, nums in paper[n]["rows"]) == 33
    assert all(h.startswith("Top-") for n in ABLATIONS for h in paper[n]["header"][1:])


@pytest.mark.parametrize("n", ABLATIONS)
def test_every_paper_row_is_defined_with_its_numbers_and_configuration(paper, n):
    study = STUDIES[f"table{n}"]
    table = paper[n]
    by_label = {norm_label(r.label): r for r in study.rows}
    assert study.row_header == table["header"][0]
    baseline = row_model(study, study.rows[0].key)
    order = []
    for label, numbers in table["rows"]:
        row = by_label.get(norm_label(label))
        assert row is not None, f"Table {n}: the paper's row {label!r} is missing from {study.name}"
        order.append(row.key)
        columns = dict(zip(table["header"][1:], numbers))
        assert row.paper_top1 == columns["Top-1"], (n, label)
        assert row.paper_top5 == columns.get("Top-5"), (n, label)  # None where the table has no Top-5
        expected = science(Experiment().override(meaning(n, label, table["caption"])).model)
        # Everything else (backbone, frames, TD blocks, ...) as in the study's first row.
        expected = replace(baseline, **{f: getattr(expected, f) for f in
                                        ("temporal", "enhance", "enhance_position", "mem_init", "td_ratio",
                                         "td_position", "td_lambda", "td_blocks")})
        assert row_model(study, row.key) == expected, f"Table {n}, row {label!r} ({row.key})"
    # The paper's rows appear in the paper's order (rows the paper lacks may sit anywhere).
    assert [r.key for r in study.rows if r.key in order] == order


@pytest.mark.parametrize("name", list(STUDIES))
def test_rows_the_paper_lacks_carry_no_paper_numbers(paper, name):
    """A row that is not in its table (``tsn``, the memory-init study) must not claim a paper number."""
    study = STUDIES[name]
    n = int(name[len("table"):]) if name.startswith("table") else None
    labels = {norm_label(label) for label, _ in paper[n]["rows"]} if n in paper else set()
    for row in study.rows:
        if norm_label(row.label) not in labels:
            assert (row.paper_top1, row.paper_top5) == (None, None), (
                f"{name}: row {row.key!r} ({row.label!r}) has paper numbers but Table {n} has no such row")
    tsn = [r for r in study.rows if r.key == "tsn"]
    for row in tsn:  # if present: frames independent, no enhancement, no TD loss
        m = row_model(study, row.key)
        assert (m.temporal, m.enhance, m.td_ratio) == ("none", "none", 0.0)
