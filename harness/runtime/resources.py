"""Peak memory of this process and of its finished children, for run reports (`harness demo`, benchmarks).

`peak_rss()` gives this process's largest resident set so far and the largest of any child that has finished and
been waited for (the corpus workers, the data-loader workers, a `torchrun` or pytest subprocess; not the sum of
the children). This process's is `VmHWM` of /proc/self/status on Linux, `ru_maxrss` of RUSAGE_SELF elsewhere
(KiB on Linux, bytes on macOS): on Linux `ru_maxrss` is the larger of `VmHWM` and a per-process record that
`execve` fills with the high-water mark of the image it replaced, i.e. of the parent that forked it (measured: a
child of an 800 MiB process reports 826 MiB at its first instruction, its VmHWM 11 MiB), and no reset clears that
record. The children's figure is RUSAGE_CHILDREN's `ru_maxrss`, with that inheritance: an upper bound.

A resident set counts the pages of memory-mapped files that the process has touched and still maps, so reading
the feature cache through `np.load(mmap_mode="r")` adds to it until the mapping is dropped.

`reset_peak_rss()` lowers this process's high-water mark (`VmHWM`) to its current resident set (Linux >= 4.0:
writing 5 to `/proc/self/clear_refs`), so that the next `peak_rss()` is the peak of what ran in between. The
children's peak cannot be reset.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

CLEAR_REFS = Path("/proc/self/clear_refs")
"""Writing `5` here resets this process's peak resident set (`VmHWM`) on Linux."""
STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class PeakRss:
    """Largest resident sets, in MiB.

    Args:
        self_mib: this process (since its start, or since the last successful `reset_peak_rss`).
        children_mib: the largest finished child of this process (0 when none has finished; an upper bound, see
            the module docstring).
    """

    self_mib: float
    children_mib: float

    @property
    def max_mib(self) -> float:
        """The larger of the two: the most memory one process of this run held at once."""
        return max(self.self_mib, self.children_mib)

    def as_dict(self) -> dict[str, float]:
        """`{"self": ..., "children": ...}` in MiB, rounded to 0.1 (for JSON reports)."""
        return {"self": round(self.self_mib, 1), "children": round(self.children_mib, 1)}


def _maxrss_mib(who: int) -> float:
    raw = resource.getrusage(who).ru_maxrss
    # ru_maxrss is in KiB on Linux and the BSDs, in bytes on macOS.
    return raw / 2**20 if sys.platform == "darwin" else raw / 1024


def _status_mib(field: str) -> float | None:
    """A `kB` field of /proc/self/status (`VmHWM`, `VmRSS`, ...) in MiB; None where /proc has no such field."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss() -> PeakRss:
    """Peak resident set size of this process (`VmHWM`, else `ru_maxrss`) and of its largest finished child, in MiB."""
    own = _status_mib("VmHWM")
    return PeakRss(_maxrss_mib(resource.RUSAGE_SELF) if own is None else own, _maxrss_mib(resource.RUSAGE_CHILDREN))


def current_rss_mib() -> float:
    """This process's resident set now (VmRSS), in MiB; its peak where /proc is not available."""
    now = _status_mib("VmRSS")
    return _maxrss_mib(resource.RUSAGE_SELF) if now is None else now


def reset_peak_rss() -> bool:
    """Lower this process's peak resident set to its current one; False where the system does not allow it.

    Only the peak is reset (the `5` of proc(5)'s clear_refs): no page is touched, and the children's peak stays.
    """
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True
