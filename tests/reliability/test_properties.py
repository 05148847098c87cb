"""Property-based tests (hypothesis): random annotation lines and random configuration values are
either accepted as valid items / a valid configuration, or refused with the library's own error
naming the line / the field - never another exception type, never a silently bad value."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tdrl.config import ConfigError
from tdrl.config.experiment import SECTIONS, Experiment
from tdrl.data.annotations import AnnotationError, load_annotations

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
CLASSES = ("Zebra", "Apple pie", "Holding something")

# Lines built from the characters that matter to the parsers (separators, digits, quotes,
# whitespace, class-name words) plus arbitrary text, so both valid and broken lines are common.
token = st.one_of(st.sampled_from(["Zebra", "Apple pie", "Holding something", "a.mp4", "dir/v 1.webm",
                                   "12", "0", "-3", "1.5", "x", "", " ", ";", ",", "\"", "'", "\t",
                                   "train", "label", "99999999999999999999"]),
                  st.integers(-5, 10**6).map(str), st.text(max_size=8))
line = st.lists(token, min_size=0, max_size=6).map(lambda parts: "".join(parts))
sep_line = st.lists(token, min_size=1, max_size=6).flatmap(
    lambda parts: st.sampled_from([";", ",", " "]).map(lambda s: s.join(parts)))
field = st.one_of(token, st.sampled_from(CLASSES), st.integers(-2, 2**70).map(str))
shaped = st.one_of(  # the shape of each format's line with random fields: mostly close to valid
    st.tuples(field, field).map(";".join),                               # sthv1  id;Class
    st.lists(field, min_size=4, max_size=7).map(",".join),               # kinetics  label,yt,start,end,split
    st.lists(field, min_size=2, max_size=3).map(" ".join))               # list  path [frames] label
lines = st.lists(st.one_of(line, sep_line, shaped), min_size=1, max_size=8)


def _write_and_parse(fmt: str, body: list[str]):
    tmp = Path(tempfile.mkdtemp(prefix="tdrl-prop-"))
    (tmp / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    ann = tmp / "ann.txt"
    ann.write_text("\n".join(body) + "\n", encoding="utf-8")
    labels = tmp / "labels.txt" if fmt != "list_nomap" else None
    fmt = "list" if fmt == "list_nomap" else fmt
    try:
        return load_annotations(fmt, tmp, ann, labels=labels), ann
    except AnnotationError as exc:
        return exc, ann


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(["sthv1", "kinetics400", "list", "list_nomap"]), body=lines)
@example(fmt="list_nomap", body=["a.mp4 99999999999999999999"])  # was: 10^20 empty classes, memory exhausted
@example(fmt="list", body=["a.mp4 12 -3"])
@example(fmt="kinetics400", body=['label,youtube_id,time_start,time_end,split', 'Zebra,"x,1,2,train'])
@example(fmt="sthv1", body=["1;Zebra;extra", ";Zebra", "2;"])
def test_annotation_lines_parse_or_are_refused_naming_the_line(fmt, body):
    try:
        result, ann = _write_and_parse(fmt, [b.replace("\n", " ").replace("\r", " ") for b in body])
    except Exception as exc:  # anything but AnnotationError is a bug
        pytest.fail(f"{fmt}: {type(exc).__name__}: {exc} for lines {body!r}")
    if isinstance(result, AnnotationError):
        assert re.search(rf"{re.escape(str(ann))}(:\d+|:|\b)", str(result)), str(result)
        return
    assert result.num_classes >= 1 or not result.records
    for rec in result.records:
        assert 0 <= rec.label < result.num_classes
        assert re.fullmatch(rf"{re.escape(str(ann))}:\d+", rec.source)
    if fmt != "list_nomap":
        assert result.num_classes == len(CLASSES)


entry = st.one_of(
    st.fixed_dictionaries({"id": st.one_of(st.integers(0, 10**6), st.text(max_size=6)),
                           "template": st.sampled_from(["Zebra", "Apple [pie]", "Holding [something]", "Nope"])}),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    st.integers(), st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2))


@SETTINGS
@given(entries=st.lists(entry, max_size=6), raw=st.one_of(st.none(), st.text(max_size=30)))
def test_sthv2_entries_parse_or_are_refused_naming_the_entry(entries, raw):
    tmp = Path(tempfile.mkdtemp(prefix="tdrl-prop-"))
    (tmp / "labels.json").write_text(json.dumps({c: str(i) for i, c in enumerate(CLASSES)}))
    ann = tmp / "ann.json"
    ann.write_text(json.dumps(entries) if raw is None else raw)
    try:
        result = load_annotations("sthv2", tmp, ann, labels=tmp / "labels.json")
    except AnnotationError as exc:
        assert str(ann) in str(exc)
        return
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc} for {entries!r} / {raw!r}")
    assert all(0 <= r.label < len(CLASSES) for r in result.records)


FIELDS = [(sec, f.name) for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
# Values aimed at the edges: non-finite and boundary numbers (also as strings), wrong types, lists.
edge = st.sampled_from([float("nan"), float("inf"), float("-inf"), 0, 0.0, -1, 1, 2, 0.5, 1.0, 1e-12, 10**9,
                        "nan", "inf", "-inf", "-1", "0", "1", "1e400", "true", "no", "none", "", "1,2", "2,1",
                        "layer4.-1", "layer9.0", "resnet18", "tim", "pem", "sthv1", "skip", "auto", ".mp4"])
value = st.one_of(edge, st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                  st.text(max_size=12),
                  st.lists(st.one_of(st.integers(-3, 60), st.floats(0, 1), st.text(max_size=4)), max_size=3))


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(FIELDS), value), min_size=1, max_size=2))
@example(changes=[(("model", "width"), float("nan"))])  # was: ValueError from int(nan) instead of ConfigError
@example(changes=[(("model", "td_lambda"), "nan")])  # was: accepted, training with a NaN loss weight
@example(changes=[(("train", "lr_per_64"), "1e400")])  # was: accepted as inf
@example(changes=[(("model", "reduction"), 0)])  # was: ZeroDivisionError instead of ConfigError
def test_config_values_are_valid_or_refused_naming_the_field(changes):
    flat = {f"{sec}.{name}": v for (sec, name), v in changes}
    try:
        exp = Experiment.from_flat(flat)
    except ConfigError as exc:
        msg = str(exc)
        assert any(key in msg for key in flat), f"{msg!r} names none of {sorted(flat)}"
        return
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc} for {flat!r}")
    # Accepted: every value is usable - finite numbers, and the flat form round-trips exactly.
    for key, v in exp.flatten().items():
        if isinstance(v, float):
            assert math.isfinite(v), f"{key}={v} accepted"
    assert Experiment.from_flat(exp.flatten()) == exp
