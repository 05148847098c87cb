"""Label-index conventions of every format on files the test writes itself (no ../shared/data/real):
each record's index points back at the class name its line gave, classes come in the documented
order, and indices start at 0. An off-by-one anywhere breaks ``classes[label] == name``."""

from __future__ import annotations

import json
from pathlib import Path

from tdrl.data.annotations import load_annotations

# Unsorted on purpose, with a repeat: sorted order, file order and first-seen order all differ.
NAMES = ["zumba", "abseiling", "bowling", "abseiling", "yoga"]


def test_kinetics_without_label_map_sorts_class_names(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n" + "".join(
        f"{name},yt{i},{10 * i},{10 * i + 10},train\n" for i, name in enumerate(NAMES)))
    ann = load_annotations("kinetics400", tmp_path, "train.csv")
    assert ann.classes == ("abseiling", "bowling", "yoga", "zumba")
    assert [r.label for r in ann.records] == [3, 0, 1, 0, 2]
    assert [ann.classes[r.label] for r in ann.records] == NAMES
    assert ann.records[1].path == tmp_path / "abseiling" / "yt1_000010_000020.mp4"


def test_kinetics_label_map_order_wins(tmp_path: Path) -> None:
    (tmp_path / "map.txt").write_text("yoga\nzumba\nbowling\nabseiling\n")
    (tmp_path / "val.csv").write_text("".join(f"{name},v{i},0,10,val\n" for i, name in enumerate(NAMES)))  # no header
    ann = load_annotations("kinetics400", tmp_path, "val.csv", labels="map.txt")
    assert ann.classes == ("yoga", "zumba", "bowling", "abseiling")
    assert [r.label for r in ann.records] == [1, 3, 2, 3, 0]
    assert [ann.classes[r.label] for r in ann.records] == NAMES


def test_sthv1_label_file_order(tmp_path: Path) -> None:
    classes = ["Pushing something", "Holding something", "Dropping something"]  # not alphabetical
    (tmp_path / "labels.csv").write_text("\n".join(classes) + "\n")
    (tmp_path / "train.csv").write_text("7;Dropping something\n8;Pushing something\n9;Holding something\n")
    ann = load_annotations("sthv1", tmp_path, "train.csv", labels="labels.csv")
    assert ann.classes == tuple(classes)
    assert [(r.path.name, r.label) for r in ann.records] == [("7", 2), ("8", 0), ("9", 1)]


def test_sthv2_index_strings_of_the_labels_json(tmp_path: Path) -> None:
    # Indices deliberately not alphabetical, so the JSON's numbers (not name order) must be used.
    (tmp_path / "labels.json").write_text(json.dumps({"Pushing something": "0", "Dropping something": "1",
                                                      "Holding something": "2"}))
    entries = [{"id": "3", "template": "Holding [something]"}, {"id": "4", "template": "Pushing [something]"},
               {"id": "5", "template": "Dropping [something]"}]
    (tmp_path / "train.json").write_text(json.dumps(entries))
    ann = load_annotations("sthv2", tmp_path, "train.json", labels="labels.json")
    assert ann.classes == ("Pushing something", "Dropping something", "Holding something")
    assert [r.label for r in ann.records] == [2, 0, 1]


def test_list_labels_are_the_integers_in_the_file(tmp_path: Path) -> None:
    (tmp_path / "map.txt").write_text("cat\ndog\nemu\n")
    (tmp_path / "list.txt").write_text("a.mp4 0\nb.mp4 2\nc.mp4 1\n")
    ann = load_annotations("list", tmp_path, "list.txt", labels="map.txt")
    assert [r.label for r in ann.records] == [0, 2, 1] and ann.classes == ("cat", "dog", "emu")
    bare = load_annotations("list", tmp_path, "list.txt")
    assert bare.classes == ("0", "1", "2")
