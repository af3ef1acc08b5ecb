"""Reading configs: named files and YAML paths, `base:` inheritance, dotted `--set` overrides, bounded YAML.

A config file is complete: every field of every section is named (nothing is silently defaulted, except the
`preprocess` section, whose fields all have defaults), except that a file may start with `base: <name>` to inherit
another config and change only some keys (`quick` builds on `demo`). Unknown keys, wrong types and out-of-range
values are rejected with the key's dotted path (`ConfigError`, see `harness.config.checks`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from core.errors import shorten
from harness.config.dotted import set_dotted
from harness.config.errors import ConfigError
from harness.config.limits import ZOO_SECTION
from harness.config.schema import Config
from models.zoo import ZOO

CONFIG_DIR = Path(__file__).parent.parent / "configs"
"""Where the named configs (`paper`, `demo`, `quick`) live (`harness/configs/`, shipped as package data)."""


def config_path(name_or_path: str | Path) -> Path:
    """The file of a named config (`paper`, `demo`, `quick`) or the given YAML path.

    Raises:
        ConfigError: when neither exists.
    """
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"} or (p.exists() and not p.is_dir()):
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        return p  # a folder or a FIFO is refused by the reader, with what it is
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if not named.is_file():
        known = ", ".join(sorted(f.stem for f in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"no config named {name_or_path!r}; known: {known} (or pass a .yaml path)")
    return named


MAX_CONFIG_BYTES = 1024 * 1024
"""Largest config file read (the paper's config is about 6 kB)."""

MAX_YAML_DEPTH = 64
"""Deepest nesting of mappings and lists a config may have (the configs use 4 levels)."""

MAX_YAML_NODES = 100_000
"""Most nodes a config may hold once its aliases are expanded: an alias bomb (aliases of aliases) is refused here,
before anything is built from it."""

MAX_BASE_CHAIN = 8
"""Longest chain of `base:` inheritance."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting depth bound and an alias-expansion budget (see `load_yaml_text`)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # Composing recurses once per nesting level: bounding it here refuses a 10,000-deep document before
        # Python's recursion limit turns it into a RecursionError.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.name}:{mark.line + 1}: nesting deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Nodes of the document once every alias is expanded, without expanding anything (memoised by node).

    Raises:
        ConfigError: more than `MAX_YAML_NODES` nodes, or an alias that contains itself.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to a node that "
                              "contains it (a recursive structure)")  # fmt: skip
        active.add(key)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            n += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        if n > MAX_YAML_NODES:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: expands to more than {MAX_YAML_NODES:,} "
                              "values (aliases of aliases: a YAML bomb?); refusing it")  # fmt: skip
        sizes[key] = n
        return n

    return size(root)


def _refuse_duplicate_keys(root: yaml.Node, source: str) -> None:
    """Refuse a mapping that names a key twice (YAML keeps the last silently: a config whose first `lr:` is
    ignored), naming both lines. Each node is visited once, so aliases cost nothing.

    Raises:
        ConfigError: `file:line2: key 'lr' given twice (lines 3 and 9)`.
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    name = (key.tag, key.value)
                    line = key.start_mark.line + 1
                    if name in lines:
                        raise ConfigError(f"{source}:{line}: key {shorten(key.value)!r} given twice (lines "
                                          f"{lines[name]} and {line}); YAML would keep the last silently")
                    lines[name] = line
                stack += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def load_yaml_text(text: str, source: str = "<yaml>") -> Any:
    """Parse YAML with the safe loader, refusing nesting beyond `MAX_YAML_DEPTH` and alias expansion beyond
    `MAX_YAML_NODES` nodes before any Python object is built.

    Args:
        text: the document.
        source: its file name, for messages.

    Raises:
        ConfigError: not valid YAML, too deep, or too large once expanded; the message names the file and line.
    """
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader checks the characters here already
        loader.name = source
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        _refuse_duplicate_keys(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        what = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{where}: not valid YAML ({what})") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{source}: a value cannot be read ({' '.join(str(exc).split())[:120]})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _read_config_text(path: Path) -> str:
    """The text of a config file: a bounded regular file (not a FIFO or a folder) in UTF-8."""
    from submissions import FormatError
    from submissions.limits import read_bounded

    try:
        data = read_bounded(path, "config file", MAX_CONFIG_BYTES)
    except FormatError as exc:
        raise ConfigError(str(exc.problems[0]).rsplit(" [", 1)[0]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"{path}: `base` chain loops: {chain}")
    if len(seen) >= MAX_BASE_CHAIN:
        raise ConfigError(f"{path}: `base` chain longer than {MAX_BASE_CHAIN} files")
    data = load_yaml_text(_read_config_text(path), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: `base` must name a config (demo, quick, ...) or a .yaml file, got {base!r}")
    base_path = Path(base) if Path(base).suffix in {".yaml", ".yml"} else None
    if base_path is not None and not base_path.is_absolute():
        base_path = path.parent / base_path
    merged = _read_yaml(base_path or config_path(base), (*seen, path))
    return _deep_merge(merged, data)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """`"trainer.epochs=3"` -> `("trainer.epochs", 3)`; the value is read as YAML (numbers, lists, null).

    Raises:
        ConfigError: without `=` or with an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = load_yaml_text(raw, f"--set {key}") if raw.strip() else ""
    except ConfigError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return key, value


def load_config(name_or_path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()) -> Config:
    """Load a named config or a YAML file, apply dotted overrides, check everything.

    Args:
        name_or_path: `paper`, `demo`, `quick`, or a path to a YAML file.
        overrides: `["stage2.epochs=3", ...]` (CLI `--set`) or a mapping `{"stage2.epochs": 3}`.

    Raises:
        ConfigError: unknown key, wrong type or out-of-range value, with its dotted path.
    """
    path = config_path(name_or_path)
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    # A file may leave the `preprocess` section out (its fields have defaults); `--set preprocess.stride=3` still
    # reaches its keys.
    data.setdefault("preprocess", {})
    # The same for the rivals' parameters: `--set zoo.lfan.attn_dim=16` reaches a model the file leaves out.
    zoo = data.setdefault(ZOO_SECTION, {})
    if isinstance(zoo, dict):
        for name in ZOO:
            zoo.setdefault(name, {})
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for key, value in items:
        set_dotted(data, key, value, "--set")
    try:
        return Config.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dumps(cfg: Config) -> str:
    """Canonical JSON of a config (for logs and tests)."""
    return json.dumps(cfg.to_dict(), sort_keys=True)
