"""Paths that may be URIs: local folders are made absolute, URIs (``s3://``, ``gs://``) are left alone.

Ray workers run in folders of their own, possibly on other nodes, so every path a run hands them
is absolute or a URI. A relative path typed on a command line is relative to the current folder.
"""

from __future__ import annotations

from pathlib import Path


def is_uri(path: str) -> bool:
    """``s3://bucket/x``, ``gs://...``, ``sqlite:///...``: anything with a scheme."""
    return "://" in path


def uri_scheme(path: str) -> str:
    """The scheme of a URI, lower-cased (``"s3"`` for ``S3://bucket/x``); ``""`` for a local path."""
    return path.partition(":")[0].lower() if is_uri(path) else ""


def absolute(path: str, base: str | Path | None = None) -> str:
    """``path`` made absolute against ``base`` (default: the current folder); a URI unchanged."""
    if is_uri(path):
        return path
    return str((Path(base or Path.cwd()) / path).resolve())


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a local folder or a URI (URIs always use ``/``)."""
    return "/".join([base.rstrip("/"), *parts]) if is_uri(base) else str(Path(base, *parts))
