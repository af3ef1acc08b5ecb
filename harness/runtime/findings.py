"""Located findings, printed the way compilers print them: `path:line: severity: message`, one line each.

`harness doctor`, `validate`, `submit` and `preprocess` report problems through this module, so a log, a pipe or an
editor's error list gets one whole line per problem whatever the terminal width (`COLUMNS` included): long paths
are never wrapped, cut or ellipsized. In a terminal the commands that show tables fold long cells onto the next
line instead (`overflow="fold"`). `--json` gives the same findings as a JSON list of
`{path, line, severity, message, code}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.errors import printable
from submissions import Problem

Severity = Literal["error", "warning", "note"]

_LOCATED = re.compile(r"^(?P<path>\S+?)(?::(?P<line>\d+))?: (?P<message>.+)$", re.S)


@dataclass(frozen=True)
class Finding:
    """One problem (or remark) about one file.

    Args:
        severity: "error" (the file cannot be used as is), "warning" (usable, worth a look) or "note" (how
            something only partly usable was handled).
        path: the file or folder it concerns (a video or run name where there is no file).
        message: what is wrong, in words.
        line: 1-based line number in `path`, None when it concerns the whole file.
        code: a short stable identifier of the kind of problem, where the check has one (`Problem.code`).
    """

    severity: Severity
    path: str
    message: str
    line: int | None = None
    code: str | None = None

    @property
    def where(self) -> str:
        """`path:line`, or `path` without a line."""
        return f"{self.path}:{self.line}" if self.line else self.path

    @property
    def what(self) -> str:
        """The message (the name `harness doctor` used before findings had lines of their own)."""
        return self.message

    def as_dict(self) -> dict[str, str | int | None]:
        """The finding as `--json` writes it."""
        return {"path": self.path, "line": self.line, "severity": self.severity, "message": self.message,
                "code": self.code}  # fmt: skip


MAX_ERROR_LINES = 20
"""Problems printed for one error (the rest are counted): the CLI's error lines and `harness submit`'s."""


def one_line(text: str) -> str:
    r"""`text` on one line: every run of whitespace that breaks the line (a newline, a carriage return, a form feed)
    made one space; other spaces are kept as they are, so a path with two spaces is printed exactly.

    >>> one_line("not valid YAML (found\n  a tab)"), one_line("a  b.mp4: bad")
    ('not valid YAML (found a tab)', 'a  b.mp4: bad')
    """
    return _BREAKS.sub(" ", str(text)).strip()


_BREAKS = re.compile(r"[ \t]*[\n\r\f\v\x1c-\x1e\x85\u2028\u2029][\s]*")


def finding_line(f: Finding) -> str:
    """`path:line: severity: message [code]` (no `:line` without a line), always on one line.

    Args:
        f: the finding.
    """
    code = f" [{f.code}]" if f.code else ""
    return f"{printable(f.where)}: {f.severity}: {one_line(f.message)}{code}"  # a path exactly, escaped


def from_problems(problems: Iterable[Problem], severity: Severity = "error") -> list[Finding]:
    """Findings of `submissions` problems (`Problem.line` 0 means the whole file).

    Args:
        problems: what a validator found.
        severity: the severity they get.
    """
    return [Finding(severity, p.path, p.reason, p.line or None, p.code) for p in problems]


def from_message(text: str, default_path: str, severity: Severity = "error") -> Finding:
    """A finding of a message that may start with its location (`path[:line]: ...`, as `HarnessError`s do).

    A message starting with a path without spaces is split there; any other is located at `default_path`. A
    severity the message repeats after the location (`path: error: ...`) is dropped.

    Args:
        text: the message.
        default_path: where a message without a location is reported.
        severity: its severity.
    """
    m = _LOCATED.match(one_line(text))
    if m and ("/" in m["path"] or "." in m["path"] or m["path"] == default_path):
        message = m["message"].removeprefix(f"{severity}: ")
        return Finding(severity, m["path"], message, int(m["line"]) if m["line"] else None)
    return Finding(severity, default_path, one_line(text))


def finding_lines(findings: Sequence[Finding], limit: int | None = None, more_at: str = "harness") -> list[str]:
    """One line per finding, at most `limit` of them and then a line that counts the rest.

    Args:
        findings: what to print.
        limit: how many to print (None: all).
        more_at: the location of the counting line.
    """
    shown = findings if limit is None else findings[:limit]
    lines = [finding_line(f) for f in shown]
    if len(findings) > len(shown):
        worst = "error" if any(f.severity == "error" for f in findings[len(shown):]) else "warning"
        lines.append(f"{more_at}: {worst}: ... and {len(findings) - len(shown)} more problem(s)")
    return lines


def findings_json(findings: Iterable[Finding]) -> str:
    """The findings as a JSON list of `{path, line, severity, message, code}` (what `--json` prints)."""
    return json.dumps([f.as_dict() for f in findings], indent=1)


def findings_table(findings: Iterable[Finding], title: str | None = None) -> Table:
    """A rich table of findings whose long cells fold onto the next line (never an ellipsis).

    Cells are `Text`, not markup: a path with `[brackets]` shows as it is.

    Args:
        findings: the rows.
        title: the table's title.
    """
    t = Table(title=title, show_lines=False)
    t.add_column("severity", no_wrap=True)
    t.add_column("location", overflow="fold")
    t.add_column("message", overflow="fold")
    style = {"error": "red", "warning": "yellow", "note": "cyan"}
    for f in findings:
        code = f" [{f.code}]" if f.code else ""
        t.add_row(Text(f.severity, style=style[f.severity]), Text(f.where), Text(one_line(f.message) + code))
    return t


def print_findings(findings: Sequence[Finding], console: Console | None = None, title: str | None = None) -> None:
    """Print findings: in a terminal as a folding table, elsewhere (a log, a pipe) as one plain line each.

    Args:
        findings: what to print (nothing is printed for none).
        console: where to print; it also says whether that is a terminal (default: stdout's console).
        title: the table's title (terminal only).
    """
    if not findings:
        return
    console = console or Console()
    if console.is_terminal:
        console.print(findings_table(findings, title))
        return
    # Not console.print: rich wraps at the console's width (COLUMNS, or 80 off a terminal).
    for line in finding_lines(findings):
        print(line, file=console.file, flush=True)
