"""The command-line side of the config, shared by every command that takes one (`train`, `folds`, `ablate`,
`demo`): `--config NAME|FILE` and repeatable `--set KEY=VALUE`, and the config they name."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from harness.config.checks import check_field
from harness.config.errors import ConfigError
from harness.config.loader import load_config, load_yaml_text
from harness.config.schema import Config


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    """Repeatable `--set KEY=VALUE` and `--engine NAME` on an argparse parser (read back by `overrides_from_args`).

    Args:
        parser: the command's parser.
    """
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set stage2.epochs=3 (repeatable)")  # fmt: skip
    parser.add_argument("--engine", choices=("deepspeed", "torch"),
                        help="what trains: deepspeed (ZeRO, the default) or torch (plain torch, one process, fp32); "
                        "the config's runtime.engine")  # fmt: skip


def add_config_arguments(parser: argparse.ArgumentParser, default: str = "demo") -> None:
    """`--config NAME|FILE` and repeatable `--set KEY=VALUE` on an argparse parser (read by `config_from_args`).

    Args:
        parser: the command's parser.
        default: the config used without `--config`.
    """
    parser.add_argument("--config", default=default,
                        help=f"config name (paper, demo, quick) or YAML file (default: {default})")  # fmt: skip
    add_override_argument(parser)


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The `--set` values, in the order given (later ones win), then `--engine` as `runtime.engine`."""
    engine = getattr(args, "engine", None)
    return list(args.overrides or []) + ([f"runtime.engine={engine}"] if engine else [])


def config_from_args(args: argparse.Namespace) -> Config:
    """The config named by `--config` with the `--set` overrides applied.

    Raises:
        ConfigError: naming the file or the dotted key that is wrong.
    """
    return load_config(args.config, overrides_from_args(args))


def field_type(section: type, name: str) -> Callable[[str], Any]:
    """An argparse `type` for a flag that sets one field of a config section: the flag's text is read as a `--set`
    value is (YAML) and meets the field's type hint and range, as a YAML value does (one source of the limits).

    Args:
        section: the section's dataclass (e.g. `PreprocessConfig`).
        name: the field's name.
    """
    hint = typing.get_type_hints(section)[name]
    (field,) = [f for f in dataclasses.fields(section) if f.name == name]

    def convert(text: str) -> Any:
        try:
            return check_field(load_yaml_text(text, name), hint, field.metadata, name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{name}: ")) from None

    return convert
