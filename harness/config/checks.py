"""Checking a config: every value against its field's type hint and range, parameter sets against the models
package's configs (the checks across keys are `harness.config.schema.check_cross`, beside `Config`).

Every problem raises `ConfigError` naming the dotted key (`stage2.epochs: -1 out of range (must be >= 0)`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from harness.config.errors import ConfigError
from harness.config.limits import FIXED_PARAMS, MAX_MODEL_INT, NESTED_PARAMS, PARAMS_OF

_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

MAX_CONFIG_INT = 2**63 - 1
"""Largest integer of any config field (beyond it a value is absurd and overflows torch and numpy)."""


def _where(path: str) -> str:
    return path or "<top>"


def _short(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters (a hostile value never fills a message)."""
    if isinstance(value, int) and abs(value) >= 10**40:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the type hint `tp`; return it normalised (lists -> tuples, ints -> floats)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{_where(path)}: {value!r} is not a {_type_name(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{_where(path)}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{_where(path)}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{_where(path)}: expected a list of {len(args)} values, got {len(value)}")
        return tuple(_check_value(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(path)}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_where(path)}: expected an integer, got {type(value).__name__} {_short(value)}")
        if abs(value) > MAX_CONFIG_INT:
            raise ConfigError(f"{_where(path)}: {_short(value)} is out of range (an integer in this config is at most "
                              f"{MAX_CONFIG_INT} in size)")  # fmt: skip
        return value
    if tp is float:
        # PyYAML reads `1e-3` (no dot) as a string (YAML 1.1); accept it as the number it plainly is.
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{_where(path)}: expected a number, got {type(value).__name__} {_short(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{_where(path)}: {_short(value)} is not a finite number")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_where(path)}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, path)
    raise ConfigError(f"{_where(path)}: unsupported field type {tp!r}")  # pragma: no cover - a bug here


def _check_range(value: Any, meta: Mapping[str, Any], path: str) -> None:
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        for key, ok, word in (
            ("ge", lambda a, b: a >= b, ">="),
            ("gt", lambda a, b: a > b, ">"),
            ("le", lambda a, b: a <= b, "<="),
            ("lt", lambda a, b: a < b, "<"),
        ):
            if key in meta and not ok(v, meta[key]):
                raise ConfigError(f"{_where(path)}: {value!r} out of range (must be {word} {meta[key]})")


def check_field(value: Any, hint: Any, meta: Mapping[str, Any], path: str) -> Any:
    """One value checked against its field's type hint and range (the check every YAML value and flag meets).

    Args:
        value: the value.
        hint: the field's type hint.
        meta: the field's metadata (`ge`, `gt`, `le`, `lt`).
        path: the dotted key named in errors.

    Returns:
        The value normalised (lists -> tuples, ints -> floats where a float is wanted).

    Raises:
        ConfigError: naming `path`.
    """
    value = _check_value(value, hint, path)
    _check_range(value, meta, path)
    return value


def _build_params(target: type, fixed: frozenset[str], data: Mapping[str, Any], path: str) -> tuple:
    """Check a parameter set against a models config class; return it as sorted (key, value) pairs.

    Args:
        target: the models config class whose fields may be set.
        fixed: fields of `target` that may not be set here.
        data: the parameters.
        path: the dotted key of the section that holds them.
    """
    hints = typing.get_type_hints(target)
    names = {f.name for f in dataclasses.fields(target)}
    out = []
    for key, value in data.items():
        p = f"{path}.{key}" if path else key
        if key in fixed:
            raise ConfigError(f"{p}: may not be set here (it is derived or set in another section)")
        if key not in names:
            allowed = ", ".join(sorted(names - fixed))
            raise ConfigError(f"{p}: unknown key; {target.__name__} fields: {allowed}")
        checked = _check_value(value, hints[key], p)
        for v in checked if isinstance(checked, tuple) else (checked,):
            if isinstance(v, int) and not isinstance(v, bool) and v > MAX_MODEL_INT:
                raise ConfigError(f"{p}: {_short(checked)} out of range (a model's integer parameters are at most "
                                  f"{MAX_MODEL_INT})")  # fmt: skip
        out.append((key, checked))
    return tuple(sorted(out))


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def build_section(cls: type, data: Any, path: str) -> Any:
    """Build dataclass `cls` from a mapping, checking keys, types and ranges.

    A field without a default must be given; one with a default (the `preprocess` section and its keys) may be
    left out.

    Args:
        cls: the section's dataclass (`Config` for a whole config).
        data: the section as read from YAML.
        path: its dotted key ("" for the top level).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_where(path)}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = dict(data)
    # A section with a parameter set takes its extra keys as the parameters: `encoder: {name, checkpoint, depth}`.
    params = [name for name, f in fields.items() if PARAMS_OF in f.metadata and not f.metadata[NESTED_PARAMS]]
    if params:
        own = set(fields) - set(params)
        data[params[0]] = {k: data.pop(k) for k in list(data) if k not in own}
    unknown = sorted(set(data) - set(fields), key=str)  # keys may be of several types (1: x, a: y)
    if unknown:
        p = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"{p}: unknown key (valid here: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        p = f"{path}.{name}" if path else name
        if name not in data:
            if _has_default(f):
                continue
            raise ConfigError(f"{p}: missing key")
        if PARAMS_OF in f.metadata:
            value = {} if data[name] is None else data[name]
            if not isinstance(value, Mapping):
                raise ConfigError(f"{p}: expected a mapping, got {type(value).__name__}")
            # A nested set's keys live under its own name (`zoo.lfan.attn_dim`), a flat one's beside its section's.
            where = p if f.metadata[NESTED_PARAMS] else path
            kwargs[name] = _build_params(f.metadata[PARAMS_OF], f.metadata[FIXED_PARAMS], value, where)
            continue
        kwargs[name] = check_field(data[name], hints[name], f.metadata, p)
    return cls(**kwargs)
