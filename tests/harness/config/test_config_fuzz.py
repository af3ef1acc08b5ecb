"""Fuzzing the config loader one key at a time: a valid config with ONE key changed (as a dict, as a YAML file that
builds on `quick`, as a `--set` override) either loads, holds the new value and round-trips through `to_yaml`, or
raises a ConfigError that names the key. Changing a single key of a valid config keeps both outcomes reachable
(random whole documents almost never load), and each test runs one valid and one invalid change every time."""

from __future__ import annotations

import dataclasses
import re
import tempfile
import typing
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.config import Config, ConfigError, PreprocessConfig, load_config, parse_override
from harness.config.limits import LATER_FIELDS
from models.zoo import ZOO

BASE = load_config("quick")
PLAIN = BASE.to_dict()


def _paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a plain config: sections and their leaves (a list is one leaf)."""
    out = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(value, dict):
            out.extend(_paths(value, f"{path}."))
    return out


KEYS = _paths(PLAIN)
UNKNOWN = ["bogus", "stage2.bogus", "model.bogus", "preprocess.bogus", "encoder.params"]
PARAMS = {f"{section}.{k}" for section, owner in (("encoder", BASE.encoder), ("stage1.mae", BASE.stage1.mae),
                                                  ("model", BASE.model), ("baseline", BASE.baseline))
          for k, _ in owner.params} | {f"zoo.{name}.{k}" for name in ZOO for k, _ in getattr(BASE.zoo, name)}
"""Keys that set a field of a models config (the registered model's value applies where one is left out)."""
DELETE = object()
"""A change that removes the key (valid only for `PARAMS` and inside `preprocess` and `zoo`, whose keys have
defaults)."""


def _get(node: Any, key: str) -> Any:
    for part in key.split("."):
        node = node[part]
    return node


def _set(node: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value


WORDS = ["bdca", "concat", "mfcc", "auto", "fp32", "visual", "1e-3"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(WORDS))  # fmt: skip
trees = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                     st.dictionaries(st.text(max_size=6), kids, max_size=3)),
                     max_leaves=8)  # fmt: skip


def _near(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same kind as `value` (so that many are valid), or anything at all."""
    if isinstance(value, bool):
        same: st.SearchStrategy[Any] = st.booleans()
    elif isinstance(value, int):
        same = st.integers(min(-2, value - 3), 2 * value + 3)
    elif isinstance(value, float):
        same = st.one_of(st.floats(min(0.0, 2 * value), 2 * abs(value) + 1.0), st.floats(allow_nan=True))
    elif isinstance(value, str):
        same = st.one_of(st.just(value), st.text(max_size=10))
    elif isinstance(value, list):
        same = st.lists(st.one_of(*(_near(v) for v in value)) if value else scalars, max_size=len(value) + 1)
    elif value is None:
        same = st.one_of(st.none(), st.integers(-1, 40), st.text(max_size=10))
    else:
        same = st.just(value)
    return st.one_of(same, same, trees)


@st.composite
def one_change(draw: st.DrawFn) -> tuple[str, Any]:
    """A dotted key of `quick` (or an unknown one) and its new value (or `DELETE`)."""
    key = draw(st.sampled_from(KEYS + UNKNOWN))
    old = _get(PLAIN, key) if key in KEYS else None
    return key, draw(st.one_of(_near(old), st.just(DELETE)) if key in KEYS else trees)


def _same(got: Any, given: Any) -> bool:
    """The loaded value is the one given, up to the loader's normalisation (ints to floats, `1e-3` to 0.001); a
    section given whole holds every key given (and defaults for those it may leave out)."""
    if isinstance(given, dict):
        return isinstance(got, dict) and all(k in got and _same(got[k], v) for k, v in given.items())
    if isinstance(given, list | tuple):
        return isinstance(got, list) and len(got) == len(given) and all(map(_same, got, given))
    if isinstance(got, float) and isinstance(given, str):
        return got == float(given)
    return got == given


def _names_key(message: str, key: str) -> bool:
    """The message names the key, a section that holds it (model parameters are checked as a section), or a key
    beside it together with the key's own name (a check of two keys: `schedule.min_lr: 0.1 exceeds lr`)."""
    if re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", message):
        return True
    where = message.split(": ", 1)[0]
    parent, _, leaf = key.rpartition(".")
    if key.startswith(f"{where}."):
        return True
    if key.startswith("model.") and where.startswith("experiment.ablation_models ("):
        return True  # the model's parameters build every row of the ablation too; the failing row is named
    return bool(parent) and where.rpartition(".")[0] == parent and re.search(rf"\b{re.escape(leaf)}\b", message)


def _default_of(key: str) -> Any:
    """The default of the config field at the dotted `key` (`dataclasses.MISSING` where it has none): a field with a
    default loads without its key (run folders written before it existed)."""
    cls: Any = Config
    *parents, leaf = key.split(".")
    for part in parents:
        cls = typing.get_type_hints(cls).get(part)
        if not dataclasses.is_dataclass(cls):
            return dataclasses.MISSING
    f = {f.name: f for f in dataclasses.fields(cls)}.get(leaf)
    if f is None:
        return dataclasses.MISSING
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _check_loaded(cfg: Config, key: str, value: Any) -> None:
    """The changed key holds its new value (its default when removed), and the config round-trips."""
    plain = cfg.to_dict()
    if value is DELETE and key in PARAMS:
        section, _, leaf = key.rpartition(".")
        assert leaf not in _get(plain, section), key
    elif (value is DELETE and key.split(".")[0] == "zoo") or (value is None and key.count(".") == 1
                                                              and key.startswith("zoo.")):  # fmt: skip
        # A rival left out (or given as an empty `lfan:`) takes its registered defaults: no parameters.
        assert _get(plain, key) == ({} if "." in key else {name: {} for name in ZOO}), key
    elif value is DELETE and tuple(key.split(".")) in LATER_FIELDS:
        # A field added after run folders existed: their config.yaml loads without it, at its neutral value.
        assert _get(plain, key) == LATER_FIELDS[tuple(key.split("."))], key
    elif value is DELETE and key == "experiment.compare_models":
        assert _get(plain, key) == [], key  # a run folder's config.yaml from before the key loads without it
    elif value is DELETE and _default_of(key) is not dataclasses.MISSING:
        assert _same(_get(plain, key), _default_of(key)), key  # e.g. experiment.ensembles, runtime.engine
    elif value is DELETE:
        section, _, leaf = key.partition(".")
        assert section == "preprocess", f"{key} removed, yet the config loaded"
        default = getattr(PreprocessConfig(), leaf) if leaf else dataclasses.asdict(PreprocessConfig())
        assert _get(plain, key) == default, key
    else:
        assert _same(_get(plain, key), value), (key, value, _get(plain, key))
    assert Config.from_dict(cfg.to_dict()) == cfg
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(cfg.to_yaml(), encoding="utf-8")
        assert load_config(path) == cfg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_change())
@example(("stage2.epochs", 3))  # valid
@example(("preprocess.stride", DELETE))  # valid: the default comes back
@example(("data.modality_dropout", DELETE))  # valid: a field added later takes its neutral value
@example(("experiment.ensembles", DELETE))  # valid: a field with a default takes it
@example(("runtime.engine", DELETE))  # valid: the default trainer (the quick config's own is torch)
@example(("windows.length", 8))  # invalid: shorter than windows.stride (a check of two keys)
@example(("model.num_heads", 5))  # invalid: the models package refuses it, named by its section
def test_from_dict_one_key(change):
    key, value = change
    data = BASE.to_dict()
    _set(data, key, value)
    try:
        cfg = Config.from_dict(data)
    except ConfigError as exc:
        assert _names_key(str(exc), key), (key, value, str(exc))
        return
    _check_loaded(cfg, key, value)


def _yaml_file(key: str, raw: str) -> tuple[str, int]:
    """A config that builds on `quick` and sets `key` to the YAML text `raw`; and the line of that key."""
    *parents, leaf = key.split(".")
    lines = ["base: quick"] + [f"{'  ' * i}{p}:" for i, p in enumerate(parents)]
    lines.append(f"{'  ' * len(parents)}{leaf}: {raw}")
    return "\n".join(lines) + "\n", len(lines)


single_line = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x85\u2028\u2029"),
                      max_size=12)  # fmt: skip


def _dumped(value: Any) -> str:
    """`value` as one line of YAML, or "" where it takes more."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()
    return "" if "\n" in text else text


@st.composite
def one_text_change(draw: st.DrawFn, keys: list[str]) -> tuple[str, str]:
    """A key of `keys` and the YAML text of its new value (often the dump of a value of the key's kind)."""
    key = draw(st.sampled_from(keys))
    dumped = _dumped(draw(_near(_get(PLAIN, key) if key in KEYS else None)))
    return key, draw(st.one_of(st.just(dumped), single_line) if dumped else single_line)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_text_change([k for k in KEYS if not isinstance(_get(PLAIN, k), dict)]))
@example(("stage2.schedule.lr", "1e-3"))  # valid (YAML 1.1 reads it as text; the loader takes the number)
@example(("deepspeed.zero_stage", "4"))  # invalid: out of range
@example(("stage2.epochs", "[1, 2"))  # invalid: not YAML (named by file and line)
def test_yaml_file_one_key(change):
    key, raw = change
    text, line = _yaml_file(key, raw)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            message = str(exc).removeprefix(f"{path.resolve()}: ").removeprefix(f"{path}: ")
            # Not YAML: named by the file, and by the key's line (or the end just after it: an unclosed bracket)
            # where PyYAML knows one (its reader's refusal of a control character carries none).
            m = re.match(rf"{re.escape(str(path.resolve()))}(?::(\d+))?: not valid YAML", str(exc))
            not_yaml = m is not None and m[1] in (None, str(line), str(line + 1))
            assert not_yaml or _names_key(message, key), (key, raw, str(exc))
            return
    _check_loaded(cfg, key, yaml.safe_load(raw))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_text_change([*KEYS, *UNKNOWN, "nope.key"]))
@example(("stage2.epochs", "3"))  # valid
@example(("preprocess.stride", "3"))  # valid: a section the file leaves out
@example(("windows.stride", "100"))  # invalid: longer than windows.length
@example(("nope.key", "1"))  # invalid: no such section
def test_override_one_key(change):
    key, value = change
    try:
        cfg = load_config("quick", [f"{key}={value}"])
    except ConfigError as exc:
        assert _names_key(str(exc).split(".yaml: ", 1)[-1], key), (key, value, str(exc))
        return
    _check_loaded(cfg, key, parse_override(f"{key}={value}")[1])
