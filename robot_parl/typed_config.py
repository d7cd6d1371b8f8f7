"""Typed dataclass configs loaded from YAML with dotted command-line overrides.

Every config in robot-parl is a dataclass. This module turns nested dicts (from YAML) into those
dataclasses, refusing unknown keys and wrong types with a message that names the dotted key, and
writes the resolved config back out so it can be saved next to every run's outputs.

Dataclasses may define ``validate(self)`` that raises :class:`ConfigError` for impossible values;
it runs after the fields are typed, and errors from nested configs are prefixed with their path.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is unknown, mistyped or impossible; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"config key '{key}': {message}" if key else message)

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` prepended to its key."""
        return ConfigError(f"{prefix}.{self.key}" if self.key else prefix, self.message)


def require(condition: bool, key: str, expected: str, value: Any) -> None:
    """Raise ConfigError for ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, f"expected {expected}, got {value!r}")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping for {tp.__name__}, got {value!r}")
        try:
            return from_dict(tp, value)
        except ConfigError as err:
            raise err.under(key) from None
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"expected one of {list(choices)}, got {value!r}")
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
                return _coerce(arg, value, key)
            except ConfigError as err:
                errors.append(err.message)
        raise ConfigError(key, " or ".join(errors))
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(key, f"expected {len(args)} items, got {len(value)}")
            items = [_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        # PyYAML (YAML 1.1) reads "1e-3" as a string; users write it that way, so accept it.
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"config field {key} has an unsupported type {tp!r}")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a nested dict; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(unknown[0], f"unknown key for {cls.__name__}; expected one of {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        default = _default(fields[name])
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            # A partial section is layered over the field's own default, not over its class defaults.
            value = _merge(to_dict(default), value)
        kwargs[name] = _coerce(hints[name], value, name)
    obj = cls(**kwargs)
    validate(obj)
    return obj


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def merged(obj: T, update: dict[str, Any]) -> T:
    """A copy of config ``obj`` with the nested values of ``update`` layered over it, validated."""
    return from_dict(type(obj), _merge(to_dict(obj), update))


def validate(obj: Any) -> None:
    """Run ``validate()`` on a config and, recursively, on its nested configs."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            try:
                validate(value)
            except ConfigError as err:
                raise err.under(f.name) from None
    check = getattr(obj, "validate", None)
    if check is not None:
        check()


def to_dict(obj: Any) -> dict[str, Any]:
    """The config as plain nested dicts and lists (YAML- and JSON-safe)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(obj)


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied (values parsed as YAML)."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "expected an override of the form dotted.key=value")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(key, f"'{part}' is not a section")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(key, f"the value {raw!r} is not YAML ({_yaml_problem(err)})") from None
    return out


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what went wrong and where."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(err, 'problem', None) or err}{where}"


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Load ``cls`` from an optional YAML file, then apply dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("", f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError("", f"config file {path} is not valid YAML: {_yaml_problem(err)}") from None
        if not isinstance(data, dict):
            raise ConfigError("", f"config file {path} must hold a mapping at the top level")
    try:
        return from_dict(cls, apply_overrides(data, overrides))
    except ConfigError as err:
        if path is None:
            raise
        raise ConfigError(err.key, f"{err.message} (config file {path} and overrides)") from None


def load_named(cls: type[T], name_or_path: str | Path, directory: Path, what: str,
               overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Load ``cls`` by name (``<directory>/<name>.yaml``) or from a YAML path, with dotted overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = directory / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in directory.glob("*.yaml"))
            raise ConfigError("", f"no {what} named {str(name_or_path)!r} in {directory}; known: {known}, "
                                  "or give a path to a YAML file")
    return load(cls, path, overrides)


def save(obj: Any, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))
