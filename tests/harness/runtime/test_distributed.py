"""The end of a distributed command: every rank tears its process group down before the interpreter exits.

A gloo group left for the interpreter's exit aborted a rank of a finished two-rank preprocess job in CI
("terminate called without an active exception"), and torchrun failed the job; on this machine a bare two-rank
gloo job whose rank 1 exits first aborted in 2 of 8 runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import HarnessError
from harness import cli
from harness.runtime import distributed
from harness.runtime.childenv import child_env
from harness.runtime.distributed import free_port

ROOT = Path(__file__).resolve().parents[3]

# Rank 1 finishes first and exits while rank 0 still works: the case that aborted.
_JOB = """
import time
import torch.distributed as dist
from harness.runtime.distributed import end_strategy
dist.init_process_group("gloo")
out = [None, None]
dist.all_gather_object(out, dist.get_rank())
assert out == [0, 1]
if dist.get_rank() == 0:
    time.sleep(0.5)
end_strategy()
assert not dist.is_initialized()
"""


def test_a_two_rank_job_ends_cleanly_every_time(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(_JOB)
    runs = 6  # with the group left alive, at least one of 6 aborts with probability about 0.8
    assert runs > 0, "the loop below checks nothing"
    for k in range(runs):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), str(script)]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, env=child_env({"OMP_NUM_THREADS": "1"}), capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "terminate called" not in text, f"run {k + 1} of {runs}:\n{text[-3000:]}"


class _FakeGroup:
    """torch.distributed's module functions that `end_strategy` calls, for a world of `size`."""

    def __init__(self, size: int) -> None:
        self.size, self.destroyed = size, 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import torch.distributed as dist

        monkeypatch.setattr(dist, "is_initialized", lambda: self.destroyed == 0)
        monkeypatch.setattr(dist, "get_world_size", lambda: self.size)
        monkeypatch.setattr(dist, "destroy_process_group", self._destroy)

    def _destroy(self) -> None:
        self.destroyed += 1


@pytest.mark.parametrize("outcome", ["ok", "harness error", "crash"])
def test_the_cli_ends_a_world_of_two_whatever_the_command_did(monkeypatch: pytest.MonkeyPatch, outcome: str) -> None:
    group = _FakeGroup(2)
    group.install(monkeypatch)

    def command(_args: object) -> int:
        if outcome == "harness error":
            raise HarnessError("bad input")
        if outcome == "crash":
            raise RuntimeError("a bug")
        return 0

    exits: list[int] = []

    def exit_now(code: int) -> None:  # the real one ends the process (the test's own, here)
        exits.append(code)
        raise _ExitedError

    monkeypatch.setattr(distributed, "exit_now", exit_now)
    parser = cli.build_parser(None)
    monkeypatch.setattr(cli, "build_parser", lambda _first: parser)
    monkeypatch.setattr(parser, "parse_args", lambda _argv: type("A", (), {"_run": staticmethod(command)})())
    if outcome == "crash":
        with pytest.raises(RuntimeError, match="a bug"):
            cli.main(["x"])
        assert exits == []  # a bug leaves through Python's own traceback, not a silent exit
    else:
        with pytest.raises(_ExitedError):
            cli.main(["x"])
        assert exits == [0 if outcome == "ok" else 2]  # a rank of several leaves with the command's code
    assert group.destroyed == 1


class _ExitedError(Exception):
    """Raised by the test's stand-in for `exit_now`."""


def test_exit_now_flushes_what_the_command_printed_and_skips_the_teardown(tmp_path: Path) -> None:
    # An atexit handler stands for the interpreter's teardown: it must not run; the unflushed print must arrive.
    job = (
        "import atexit, sys\nfrom harness.runtime.distributed import exit_now\n"
        "atexit.register(lambda: print('teardown ran'))\nsys.stdout.write('last line')\nexit_now(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", job], cwd=ROOT, env=child_env({}), capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (3, "last line"), proc.stderr


def test_a_world_of_one_stays_up_for_the_next_command(monkeypatch: pytest.MonkeyPatch) -> None:
    group = _FakeGroup(1)
    group.install(monkeypatch)
    distributed.end_strategy()
    assert group.destroyed == 0
