"""Shared machinery for tdrl's typed configuration dataclasses.

Every section (model, data, train, ...) is a frozen dataclass that validates itself in
``__post_init__`` and raises :class:`ConfigError` naming the field, the bad value and what is
allowed. This module turns sections into flat ``section.field`` dictionaries (MLflow params, Tune
search spaces), builds them back from dictionaries with unknown keys and wrong types refused, and
generates argparse options from the fields so the CLI never restates a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from typing import Any, Iterable, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the field and what is allowed."""


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{field}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


def check_range(field: str, value: float, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field}={value!r} must be a number")
    if not math.isfinite(value):  # nan passes every comparison below, inf every one-sided bound
        raise ConfigError(f"{field}={value!r} must be a finite number")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        lo = lo or "(-inf"
        hi = hi or "inf)"
        raise ConfigError(f"{field}={value!r} is out of range; allowed {lo}, {hi}")


def check_int(field: str, value: object, low: int | None = None, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field}={value!r} must be an integer")
    if low is not None and value < low:
        raise ConfigError(f"{field}={value} must be >= {low}" + (f" ({why})" if why else ""))


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce(field: str, tp: Any, value: Any) -> Any:
    """Convert ``value`` to the field's declared type, refusing what does not fit.

    Strings are accepted for numbers and booleans because values arrive from the command line,
    YAML/JSON files and Tune search spaces alike.
    """
    base, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{field} must not be empty (expected {getattr(base, '__name__', base)})")
    if optional and isinstance(value, str) and value.lower() in ("none", "null", ""):
        return None
    origin = typing.get_origin(base)
    if origin is typing.Literal:
        allowed = typing.get_args(base)
        check_choice(field, value, allowed)
        return value
    if origin is tuple:
        item_tp = typing.get_args(base)[0]
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{field}={value!r} must be a list")
        return tuple(_coerce(f"{field}[{i}]", item_tp, v) for i, v in enumerate(value))
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{field}={value!r} must be true or false")
    if base is int:
        if isinstance(value, bool):
            raise ConfigError(f"{field}={value!r} must be an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{field}={value!r} must be an integer")
    if base is float:
        if isinstance(value, bool):
            raise ConfigError(f"{field}={value!r} must be a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{field}={value!r} must be a number")
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{field}={value!r} must be a string")
        return value
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], values: Mapping[str, Any], *, section: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    prefix = f"{section}." if section else ""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)}; "
            f"known keys: {', '.join(prefix + n for n in sorted(names))}")
    hints = _field_types(cls)
    kwargs = {k: _coerce(prefix + k, hints[k], v) for k, v in values.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict of a dataclass (tuples kept as lists so it serialises to JSON)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def flatten(sections: Mapping[str, Any]) -> dict[str, Any]:
    """``{"model": ModelConfig(...)}`` -> ``{"model.td_ratio": 0.5, ...}`` (MLflow params, Tune keys)."""
    flat: dict[str, Any] = {}
    for name, cfg in sections.items():
        for k, v in to_dict(cfg).items():
            flat[f"{name}.{k}"] = ",".join(map(str, v)) if isinstance(v, list) else v
    return flat


def split_flat(flat: Mapping[str, Any], sections: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Inverse of :func:`flatten` on keys: ``{"model.td_ratio": x}`` -> ``{"model": {"td_ratio": x}}``."""
    sections = tuple(sections)
    out: dict[str, dict[str, Any]] = {s: {} for s in sections}
    for key, v in flat.items():
        sec, _, name = key.partition(".")
        if sec not in out or not name:
            raise ConfigError(f"unknown key {key!r}; keys look like SECTION.FIELD with SECTION one of "
                              f"{', '.join(sections)}")
        out[sec][name] = v
    return out


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """Add one ``--field-name`` option per dataclass field; defaults stay in the dataclass.

    Every option defaults to ``None`` (meaning "not given") so that presets and files can be
    layered underneath the command line.
    """
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") is False:
            continue
        base, _ = _strip_optional(hints[f.name])
        helptext = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        if typing.get_origin(base) is typing.Literal:
            choices = typing.get_args(base)
            parser.add_argument(option_name(f.name), dest=f.name, default=None, choices=choices,
                                help=f"{helptext} (default: {default})")
        elif base is bool:
            parser.add_argument(option_name(f.name), dest=f.name, default=None,
                                action=argparse.BooleanOptionalAction, help=f"{helptext} (default: {default})")
        else:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            parser.add_argument(option_name(f.name), dest=f.name, default=None, metavar=f.name.upper(),
                                help=f"{helptext} (default: {shown})")


def given_arguments(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The options of ``cls`` the user actually gave (value not None)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` with the same coercion and errors as :func:`from_dict`."""
    section = getattr(cfg, "SECTION", "")
    merged = {**to_dict(cfg), **changes}
    return from_dict(type(cfg), merged, section=section)
