"""Run a function in a child process, so that a native crash (a codec's SIGSEGV) ends the call, not the caller.

`IsolatedWorker` keeps one child (a fresh interpreter: the caller may hold threads, which `fork` would copy
half-way) and sends it calls one at a time over a pipe; the child stays up between calls, so its imports and
whatever it caches (a face detector) are paid once per run, not once per call. When the child dies during a call
(a signal, `os._exit`), the call raises `ChildCrashedError` naming the signal, and the next call starts a fresh child.

Exceptions raised by the function come back as they are when they pickle, otherwise as a `HarnessError` with
their type and text.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from core.errors import HarnessError
from core.locking import set_holder_pid


class ChildCrashedError(HarnessError):
    """The child process died during a call.

    Args:
        exitcode: the child's exit code (negative: the signal that ended it).
    """

    def __init__(self, exitcode: int | None):
        self.exitcode = exitcode
        super().__init__(describe_exit(exitcode))


def describe_exit(exitcode: int | None) -> str:
    """How a child ended, in words: `killed by signal SIGSEGV (11)`, `exited with status 3`."""
    if exitcode is None:
        return "ended without an exit status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "an unknown signal"
        return f"killed by signal {name} ({-exitcode})"
    return f"exited with status {exitcode}"


def _portable(exc: BaseException) -> Any:
    """What the child sends for `exc`: the exception itself when it survives pickling; else, for an exception whose
    constructor takes other arguments than its message (`VideoError(path, reason, fix)`), its class, args and
    state, rebuilt by `_rebuilt` without calling the constructor; else a HarnessError with its type and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # any failure to round-trip: send it in parts
        pass
    parts = (_REBUILD, type(exc), exc.args, dict(vars(exc)))
    try:
        pickle.loads(pickle.dumps(parts))
        return parts
    except Exception:  # a class or state that does not pickle: its text, as a HarnessError
        return HarnessError(f"{type(exc).__name__}: {exc}")


_REBUILD = "core.isolation: rebuild"


def _rebuilt(value: Any) -> BaseException:
    """The exception the child sent (see `_portable`)."""
    if isinstance(value, tuple) and len(value) == 4 and value[0] == _REBUILD:
        _, cls, args, state = value
        exc = cls.__new__(cls)
        exc.args = args
        exc.__dict__.update(state)
        return exc
    return value


_PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal the kernel sends this process when its parent dies."""


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this child when its parent dies (even by SIGKILL): a killed run must not leave a
    child finishing a video behind its back. Linux only; elsewhere the child ends at its next call (EOF)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _serve(conn: Connection, parent: int) -> None:
    """The child's loop: run each (function, args) received and send back (True, result) or (False, error)."""
    _die_with_parent(parent)
    set_holder_pid(parent)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        fn, args = msg
        try:
            reply: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # every error goes back to the caller
            reply = (False, _portable(exc))
        conn.send(reply)


_CHILD_CODE = (
    "import sys; sys.path[:0] = sys.argv[3:]; from core.isolation import child_main; "
    "child_main(int(sys.argv[1]), int(sys.argv[2]))"
)
"""The child's whole program: the parent's import path first, then the call loop on the inherited socket."""


def child_main(fd: int, parent: int) -> None:
    """Entry point of the child process (see `IsolatedWorker`): serve calls on the socket `fd` until it closes."""
    _serve(Connection(fd), parent)


class IsolatedWorker:
    """One child process that runs calls for its parent (see the module docstring). Use as a context manager.

    The child is a fresh interpreter (`python -c ...`, like multiprocessing's `spawn` but without re-running the
    caller's `__main__`, so a library caller needs no `if __name__ == "__main__"` guard), talking over a socket pair.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self.started = 0
        """How many children this worker has started (1 + one per crash)."""

    def _ensure(self) -> Connection:
        if self._proc is None or self._proc.poll() is not None:
            ours, theirs = socket.socketpair()
            argv = [sys.executable, "-c", _CHILD_CODE, str(theirs.fileno()), str(os.getpid()),
                    *[p for p in sys.path if p]]  # fmt: skip
            self._proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
            theirs.close()
            self._conn = Connection(ours.detach())
            self.started += 1
        assert self._conn is not None
        return self._conn

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in the child; its result, or its exception raised here.

        Args:
            fn: a module-level function (it is sent by reference).
            args: picklable arguments.

        Raises:
            ChildCrashedError: the child died during the call (the next call starts a new one).
        """
        conn = self._ensure()
        try:
            conn.send((fn, args))
            ok, value = conn.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            assert self._proc is not None
            code = self._proc.wait()
            self._reset()
            raise ChildCrashedError(code) from None
        if ok:
            return value
        raise _rebuilt(value)

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        """Stop the child (asked to finish, then terminated if it does not within 10 s)."""
        if self._proc is None:
            return
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            self._proc.wait()
        self._reset()

    def __enter__(self) -> IsolatedWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
