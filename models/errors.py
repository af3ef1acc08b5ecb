"""Errors raised by the models package: bad configurations and unreadable or mismatched checkpoints."""

from __future__ import annotations

from core.errors import HarnessError


class ModelError(HarnessError):
    """Base class of the models package's deliberate errors."""


class ModelConfigError(ModelError, ValueError):
    """An unknown model name, an unknown config field, or a field value the model cannot be built with."""


def require_config(cond: bool, cfg: object, message: str) -> None:
    """Raise `ModelConfigError` naming the config's class and `message` unless `cond` holds (the config checks'
    one form, for `models.configs` and `models.zoo.configs` alike)."""
    if not cond:
        raise ModelConfigError(f"{type(cfg).__name__}: {message}")


class CheckpointError(ModelError):
    """A checkpoint file that cannot be read, or whose contents do not fit the model."""


class CheckpointShapeError(CheckpointError):
    """A checkpoint tensor whose shape differs from the model's tensor of the same name.

    Args:
        key: the state-dict key.
        expected: the model's shape.
        found: the checkpoint's shape.
        source: where the checkpoint came from (a file name), for the message.
    """

    def __init__(self, key: str, expected: tuple[int, ...], found: tuple[int, ...], source: str = "checkpoint"):
        self.key = key
        self.expected = tuple(expected)
        self.found = tuple(found)
        self.source = source
        super().__init__(f"{source}: shape mismatch for {key!r}: the model expects {self.expected}, found {self.found}")
