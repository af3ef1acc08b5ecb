"""The `harness` command line: discovers one module per subcommand under `harness.commands`.

Each command module defines `NAME` (the subcommand), `HELP` (one line for `harness --help`), `EXAMPLES` (shown by
`harness NAME --help`), `add_arguments(parser)` and `run(args) -> int`. The CLI only wires: the work is done by
functions the tests call directly.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Sequence
from types import ModuleType

import harness.commands as commands_pkg
from core.errors import HarnessError
from harness.runtime.findings import MAX_ERROR_LINES, finding_lines, from_problems, one_line
from harness.runtime.safe_io import force_weights_only
from submissions import FormatError


def _command_modules(only: str | None = None) -> list[ModuleType]:
    """The command modules; with `only`, just that command's module when it exists (the others are not imported:
    some import scipy or torch at start-up, seconds that a refused input should not wait for)."""
    if only and not only.startswith(("-", "_")):
        name = only.replace("-", "_")
        if any(info.name == name for info in pkgutil.iter_modules(commands_pkg.__path__)):
            mod = importlib.import_module(f"harness.commands.{name}")
            if getattr(mod, "NAME", None) == only and hasattr(mod, "run"):
                return [mod]
    mods = []
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"harness.commands.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return mods


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser, one subparser per command module.

    Args:
        only: build just this command's subparser (when it names a command); None builds them all.
    """
    parser = argparse.ArgumentParser(
        prog="harness",
        description="BDCA audio-visual valence/arousal: preprocess, train, predict, score and submit (ABAW).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for mod in sorted(_command_modules(only), key=lambda m: m.NAME):
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=mod.HELP,
            epilog="examples:\n" + "\n".join(f"  {e}" for e in mod.EXAMPLES),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


_LOCATION = re.compile(r"^(?P<where>\S+?): (?P<what>.+)$", re.S)


def error_lines(exc: HarnessError) -> list[str]:
    """The lines the CLI prints for an error: `path[:line]: error: message`, one per problem, never wrapped.

    A `FormatError` gives one line per problem (at most `MAX_ERROR_LINES`, then a count); any other error one
    line, located at the path or key its message starts with, else at `harness`.

    Args:
        exc: the error.
    """
    if isinstance(exc, FormatError):
        return finding_lines(from_problems(exc.problems), MAX_ERROR_LINES)
    text = str(exc).strip() or type(exc).__name__
    m = _LOCATION.match(text)
    if m:
        # Some messages carry the severity already ("path: error: ..."): print it once.
        return [f"{m['where']}: error: {one_line(m['what']).removeprefix('error: ')}"]
    return [f"harness: error: {one_line(text)}"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `harness` console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    force_weights_only()
    try:  # an exception `_dispatch` lets through (a bug) leaves with Python's own traceback, never by `exit_now`
        code = _dispatch(args)
    finally:
        left_world = False
        if "torch" in sys.modules:  # only a command that imported torch can have joined a group; others skip it
            from harness.runtime.distributed import end_strategy, exit_now  # heavy: torch (test_layers, HEAVY)

            left_world = end_strategy()
    if left_world:
        exit_now(code)
    return code


def _dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; a user's error becomes its printed lines and exit code 2 (130 when interrupted)."""
    try:
        return int(args._run(args) or 0)
    except HarnessError as exc:
        for line in error_lines(exc):
            print(line, file=sys.stderr, flush=True)
        return 2
    except OSError as exc:
        # A file the command could not open or write (permission, a folder in place of a file, a full disk):
        # the user's problem, named, not a traceback. Errors without a file name are bugs and still raise.
        if exc.filename is None:
            raise
        print(f"{exc.filename}: error: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
