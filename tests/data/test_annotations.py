"""Annotation parsers: real label files' class orders, each format on tiny files, malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdrl.config.data import DataConfig
from tdrl.data.annotations import (AnnotationError, count_clips, load_annotations, parse_kinetics, parse_list,
                                   parse_sthv1, parse_sthv2, read_class_list, read_sthv2_labels)


def test_real_v1_labels_keep_file_order_not_alphabetical(real: Path) -> None:
    classes = read_class_list(real / "label_map_sthv1.txt")
    assert len(classes) == 174
    assert classes[:3] == ("Holding something", "Turning something upside down",
                           "Turning the camera left while filming something")
    assert list(classes) != sorted(classes)


def test_real_v2_labels_json_gives_indices(real: Path) -> None:
    classes = read_sthv2_labels(real / "something-something-v2-labels.json")
    assert len(classes) == 174
    assert classes[0] == "Approaching something with your camera"
    assert classes[1] == "Attaching something to something"
    # The official JSON's indices coincide with the mmaction2 index-order map.
    assert list(classes) == (real / "label_map_sthv2.txt").read_text().splitlines()
    assert set(classes) == set(read_class_list(real / "label_map_sthv1.txt"))


def test_real_kinetics_label_map_is_sorted_convention(real: Path, tmp_path: Path) -> None:
    classes = read_class_list(real / "label_map_k400.txt")
    assert len(classes) == 400 and classes[0] == "abseiling"
    assert list(classes) == sorted(classes)  # our default convention (sorted names) agrees with the map
    csv = tmp_path / "k.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\n" + "".join(
        f"{c},yt{i},{i},{i + 10},train\n" for i, c in enumerate(reversed(classes))))
    ann = parse_kinetics(csv, tmp_path)
    assert ann.classes == classes
    assert ann.records[0].label == 399
    assert ann.records[0].path == tmp_path / classes[-1] / "yt0_000000_000010.mp4"


def test_sthv1(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("Zebra class\nApple class\n")
    (tmp_path / "train.csv").write_text("100;Apple class\n\n200;Zebra class\n")
    ann = parse_sthv1(tmp_path / "train.csv", tmp_path / "labels.csv", tmp_path / "frames")
    assert ann.classes == ("Zebra class", "Apple class")
    assert [(r.path.name, r.label) for r in ann.records] == [("100", 1), ("200", 0)]
    assert ann.records[1].source.endswith("train.csv:3")


def test_sthv2_class_is_template_without_brackets(tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text(json.dumps({"Putting something on something": "1",
                                                      "Holding something": "0"}))
    (tmp_path / "train.json").write_text(json.dumps([
        {"id": "7", "label": "putting a cup on a table", "template": "Putting [something] on [something]",
         "placeholders": ["a cup", "a table"]},
        {"id": "8", "label": "holding pen", "template": "Holding [something]", "placeholders": ["pen"]}]))
    ann = load_annotations("sthv2", tmp_path, "train.json", labels="labels.json", video_dir="vids")
    assert ann.classes == ("Holding something", "Putting something on something")
    assert [(r.path, r.label) for r in ann.records] == [(tmp_path / "vids" / "7.webm", 1),
                                                        (tmp_path / "vids" / "8.webm", 0)]


def test_list_both_forms_and_spaces(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("a/b c.mp4 3\nframes/x 40 1\n")
    ann = parse_list(tmp_path / "l.txt", tmp_path)
    assert [(str(r.path.relative_to(tmp_path)), r.num_frames, r.label) for r in ann.records] == [
        ("a/b c.mp4", None, 3), ("frames/x", 40, 1)]
    assert ann.num_classes == 4


@pytest.mark.parametrize("fmt,text,line", [
    ("sthv1", "100;Apple\n200 Zebra\n", 2),
    ("sthv1", "100;Apple\n300;Mango\n", 2),  # unknown label
    ("kinetics400", "label,youtube_id,time_start,time_end,split\nApple,x,1,2\n", 2),
    ("kinetics400", "label,youtube_id,time_start,time_end,split\nApple,x,one,2,train\n", 2),
    ("list", "a.mp4 1\nb.mp4 one\n", 2),
    ("list", "a.mp4 1\nb.mp4 5\n", 2),  # label past the label map
])
def test_malformed_or_unknown_names_file_and_line(tmp_path: Path, fmt: str, text: str, line: int) -> None:
    (tmp_path / "labels.txt").write_text("Zebra\nApple\n")
    ann = tmp_path / "ann.txt"
    ann.write_text(text)
    labels = tmp_path / "labels.txt" if fmt != "kinetics400" else tmp_path / "labels.txt"
    with pytest.raises(AnnotationError, match=rf"ann\.txt:{line}\b"):
        load_annotations(fmt, tmp_path, ann, labels=labels)


def test_v2_unknown_template_and_bad_json(tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text(json.dumps({"Holding something": "0"}))
    (tmp_path / "t.json").write_text(json.dumps([{"id": "1", "template": "Holding [something]"},
                                                 {"id": "2", "template": "Dropping [something]"}]))
    with pytest.raises(AnnotationError, match=r"t\.json:entry 1: unknown label 'Dropping something'"):
        parse_sthv2(tmp_path / "t.json", tmp_path / "labels.json", tmp_path)
    (tmp_path / "t.json").write_text('[{"id": "1",\n "template": }]')
    with pytest.raises(AnnotationError, match=r"t\.json:2: not valid JSON"):
        parse_sthv2(tmp_path / "t.json", tmp_path / "labels.json", tmp_path)
    (tmp_path / "t.json").write_text(json.dumps([{"id": "1"}]))
    with pytest.raises(AnnotationError, match="entry 0: malformed"):
        parse_sthv2(tmp_path / "t.json", tmp_path / "labels.json", tmp_path)


def test_missing_annotation_file_named(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"nope\.csv: annotation/label file not found"):
        load_annotations("kinetics400", tmp_path, "nope.csv")
    with pytest.raises(AnnotationError, match="no default train annotation"):
        load_annotations("list", tmp_path, None)


def test_a_uri_root_is_read_in_memory_and_counted_without_staging(tmp_path: Path, monkeypatch) -> None:
    """`--plan` counts a remote dataset's clips: a ``file://`` (as ``s3://``, ``gs://``) root's
    annotation and label files are read through pyarrow, nothing is staged or written."""
    root = tmp_path / "ssv1"
    root.mkdir()
    (root / "something-something-v1-labels.csv").write_text("Zebra class\nApple class\n")
    (root / "something-something-v1-train.csv").write_text("100;Apple class\n200;Zebra class\n300;Apple class\n")
    (root / "something-something-v1-validation.csv").write_text("400;Zebra class\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(work))
    monkeypatch.chdir(work)
    uri = f"file://{root}"
    ann = load_annotations("sthv1", uri, None, split="train")
    assert ann.classes == ("Zebra class", "Apple class") and [r.label for r in ann.records] == [1, 0, 1]
    cfg = DataConfig(dataset="sthv1", root=uri)
    assert (count_clips(cfg, "train"), count_clips(cfg, "val")) == (3, 1)
    assert list(work.iterdir()) == []  # no staging lock, no copy
    with pytest.raises(AnnotationError, match="annotation/label file not found"):
        count_clips(DataConfig(dataset="sthv1", root="file:///absent/ssv1"), "train")
    assert list(work.iterdir()) == []
