"""Shared machinery for tdrl's typed configuration dataclasses.

Every section (model, data, train, ...) is a frozen dataclass that validates itself in
``__post_init__`` and raises :class:`ConfigError` naming the field, the bad value and what is
allowed. This module turns sections into flat ``section.field`` dictionaries (MLflow params, Tune
search spaces), builds them back from dictionaries with unknown keys and wrong types refused, and
generates argparse options from the fields so the CLI never restates a default.

The type hints are the allowed values: a ``Literal`` field is checked by :func:`check_declared`
and offered as argparse ``choices`` from its hint alone, and other modules read the values with
:func:`literal_values`. Field metadata carries the rest: ``help``; ``arch`` (the field changes the
network's parameters, so a checkpoint must match it); ``option`` (the command-line name where the
field name alone would clash, e.g. ``--data-workers``); ``path`` (a path that a command line gives
relative to the current folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from typing import Any, Iterable, Mapping, TypeVar

from tdrl.config.paths import absolute

T = TypeVar("T")


class InputError(Exception):
    """Bad input from the user (a value, file, path or checkpoint): ``tdrl COMMAND`` prints
    ``tdrl COMMAND: error: <message>`` on stderr and exits 2, without a traceback."""


class ConfigError(InputError, ValueError):
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
        if isinstance(value, str) and all(type(a) is int for a in allowed):
            value = _coerce(field, int, value)  # Literal[1, 3] from a command line or file
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
    if base in (int, float):
        return _coerce_number(field, base, value)
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{field}={value!r} must be a string")
        return value
    return value


def _coerce_number(field: str, kind: type, value: Any) -> Any:
    """An int or float field from a number or a numeric string; booleans, and fractions for an int
    field, are refused."""
    if not isinstance(value, bool):
        if isinstance(value, int) or (isinstance(value, float) and (kind is float or value.is_integer())):
            return kind(value)
        if isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                pass
    raise ConfigError(f"{field}={value!r} must be {'an integer' if kind is int else 'a number'}")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def literal_values(cls: type, name: str) -> tuple[Any, ...]:
    """The allowed values of field ``name`` of ``cls``, read from its ``Literal[...]`` type hint."""
    base, _ = _strip_optional(_field_types(cls)[name])
    if typing.get_origin(base) is not typing.Literal:
        raise TypeError(f"{cls.__name__}.{name} is not a Literal field")
    return typing.get_args(base)


def marked_fields(cls: type, key: str) -> tuple[str, ...]:
    """Names of the fields of ``cls`` whose metadata sets ``key`` (e.g. ``"arch"``)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(key))


def check_declared(cfg: Any) -> None:
    """Check every ``Literal`` and ``bool`` field of a section against its type hint (``X | None``
    also allows None): the one check behind every choice field, called from ``__post_init__``."""
    section = getattr(cfg, "SECTION", type(cfg).__name__)
    hints = _field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        base, optional = _strip_optional(hints[f.name])
        value = getattr(cfg, f.name)
        if value is None and optional:
            continue
        if typing.get_origin(base) is typing.Literal:
            check_choice(f"{section}.{f.name}", value, typing.get_args(base))
        elif base is bool and not isinstance(value, bool):
            raise ConfigError(f"{section}.{f.name}={value!r} must be true or false" + (" or none" if optional else ""))


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


def option_name(f: dataclasses.Field) -> str:
    """``--field-name``, or the name the field's ``option`` metadata gives."""
    return f.metadata.get("option") or "--" + f.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                  defaults: Any = None, prefix: str = "") -> None:
    """Add one ``--field-name`` option per dataclass field; defaults stay in the dataclass.

    Every option defaults to ``None`` (meaning "not given") so that presets and files can be
    layered underneath the command line. ``defaults`` (an instance of ``cls``) is what the help
    shows as each default, when a bare command starts from other values than the dataclass's
    (``tdrl train`` starts from the smoke preset). ``prefix`` goes before each ``dest`` (``"data."``),
    so sections with a field of the same name never clash; read them back with :func:`given_arguments`.
    """
    hints = _field_types(cls)
    shown_defaults = to_dict(defaults) if defaults is not None else {}
    for f in dataclasses.fields(cls):
        base, _ = _strip_optional(hints[f.name])
        if f.name in shown_defaults:
            default = shown_defaults[f.name]
        else:
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else default
        helptext = f"{f.metadata.get('help', '')} (default: {shown})"
        if typing.get_origin(base) is typing.Literal:
            choices = typing.get_args(base)
            kind = int if all(type(c) is int for c in choices) else None
            parser.add_argument(option_name(f), dest=prefix + f.name, default=None, choices=choices, type=kind,
                                help=helptext)
        elif base is bool:
            parser.add_argument(option_name(f), dest=prefix + f.name, default=None, action=argparse.BooleanOptionalAction,
                                help=helptext)
        else:
            parser.add_argument(option_name(f), dest=prefix + f.name, default=None, metavar=option_name(f)[2:].upper().replace("-", "_"),
                                help=helptext)


def given_arguments(args: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The options of ``cls`` the user actually gave (value not None), keyed by field name, with
    the ``path`` fields made absolute against the current folder (a path typed on a command line
    means what the shell means by it). ``prefix`` is the ``dest`` prefix the options were added with."""
    given = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, prefix + f.name, None)
        if value is not None:
            given[f.name] = absolute(value) if f.metadata.get("path") and value else value
    return given


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` with the same coercion and errors as :func:`from_dict`."""
    section = getattr(cfg, "SECTION", "")
    merged = {**to_dict(cfg), **changes}
    return from_dict(type(cfg), merged, section=section)
