"""A study folder's JSON state files (local or a URI): what a study run, or a confirmation's chosen
rows, needs to resume as it started.

Kept apart from the runner, which imports Ray, so that ``--plan`` reads a started study's state
without paying for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pyarrow.fs

from tdrl.config.paths import is_uri, join

STATE_FILE = "tdrl_study.json"


def _fs(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """``(pyarrow filesystem, path within it)`` for a local folder or a URI (s3://, gs://)."""
    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), str(Path(path).resolve())


def read_state(study_dir: str, name: str = STATE_FILE) -> dict[str, Any] | None:
    """The JSON file ``name`` of a study folder (local or a URI), or None when it has none."""
    fs, p = _fs(join(study_dir, name))
    try:
        with fs.open_input_stream(p) as f:
            return json.loads(f.read().decode())
    except (FileNotFoundError, OSError):
        return None


def write_state(study_dir: str, state: Mapping[str, Any], name: str = STATE_FILE) -> None:
    """Write ``state`` as the JSON file ``name`` of a study folder, creating the folder."""
    fs, p = _fs(join(study_dir, name))
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(json.dumps(state, indent=1, default=str).encode())
