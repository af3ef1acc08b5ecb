"""Error types of the ABAW files: every message names the file, the place and the reason (base: `core.errors`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import HarnessError


@dataclass(frozen=True)
class Problem:
    """One problem found in a file.

    Args:
        path: the file the problem is in.
        line: 1-based line number, or 0 when the problem concerns the whole file.
        reason: what is wrong, in words.
        code: a short stable identifier of the kind of problem (for tests and machines).
    """

    path: str
    line: int
    reason: str
    code: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason} [{self.code}]"


class FormatError(HarnessError):
    """A file does not follow its ABAW format; carries every problem found."""

    def __init__(self, problems: list[Problem] | Problem | str, path: str | Path | None = None):
        if isinstance(problems, str):
            problems = [Problem(str(path or "?"), 0, problems, "format")]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} problem(s):\n{shown}{more}")


class MetricError(HarnessError, ValueError):
    """CCC inputs that have no defined score (length mismatch, NaN/inf, too few frames)."""
