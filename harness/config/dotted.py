"""Dotted-path helpers: a config's keys written `section.key` (`--set`, `Config.replace`)."""

from __future__ import annotations

from typing import Any

from harness.config.errors import ConfigError


def set_dotted(data: dict[str, Any], key: str, value: Any, origin: str) -> None:
    """Set `data["a"]["b"]["c"] = value` for the key `"a.b.c"`; every section on the way must exist.

    Args:
        data: a config as plain dicts (changed in place).
        key: the dotted key.
        value: the new value.
        origin: what set it (`--set`, `replace`), for the message.

    Raises:
        ConfigError: a section on the way is unknown or not a mapping.
    """
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
            raise ConfigError(f"{origin}: unknown key {'.'.join(parts[: i + 1])!r} (in {key!r})")
        node = node[part]
    node[parts[-1]] = value
