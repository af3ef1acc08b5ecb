"""The error every config problem raises (its own module, so that every part of the package can raise it)."""

from __future__ import annotations

from core.errors import HarnessError


class ConfigError(HarnessError):
    """A config file or override that cannot be used: names the dotted key and what is wrong."""
