"""The command-line side of the config, shared by every command that takes one (`train`, `folds`, `ablate`,
`demo`): `--config NAME|FILE` and repeatable `--set KEY=VALUE`, and the config they name."""

from __future__ import annotations

import argparse

from harness.config.loader import load_config
from harness.config.schema import Config


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    """Repeatable `--set KEY=VALUE` on an argparse parser (read back by `overrides_from_args`).

    Args:
        parser: the command's parser.
    """
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set stage2.epochs=3 (repeatable)")  # fmt: skip


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
    """The `--set` values, in the order given (later ones win)."""
    return list(args.overrides or [])


def config_from_args(args: argparse.Namespace) -> Config:
    """The config named by `--config` with the `--set` overrides applied.

    Raises:
        ConfigError: naming the file or the dotted key that is wrong.
    """
    return load_config(args.config, overrides_from_args(args))
