"""No pickled code runs: every `torch.load` in the process reads with `weights_only=True`, DeepSpeed's included.

DeepSpeed 0.19 calls `torch.load(..., weights_only=False)` when it resumes a checkpoint (`engine.load_checkpoint`,
its checkpoint engine, `zero_to_fp32`): a shared run folder whose `mp_rank_00_model_states.pt` is a pickle with a
`__reduce__` payload would run that payload. Two layers stop it:

1. `force_weights_only()` sets `TORCH_FORCE_WEIGHTS_ONLY_LOAD=1` for the process (and for every process it starts,
   e.g. torchrun workers): torch then reads every file with its weights-only unpickler *whatever the caller asks*.
   The `harness` command calls it first thing; so does `load_deepspeed_checkpoint`.
2. `load_deepspeed_checkpoint` allow-lists exactly the DeepSpeed classes its checkpoints hold
   (`DEEPSPEED_SAFE_GLOBALS`, found by loading the checkpoints of ZeRO stages 0-3 with weights_only=True) and
   turns a refusal into a `CheckpointRefusedError` naming the file and the type.

Library users who bypass the CLI and call DeepSpeed themselves can call `force_weights_only()` at start-up, or set
the variable in the environment: `export TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import HarnessError

FORCE_VAR = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
"""torch's switch that makes `torch.load` use the weights-only unpickler even when `weights_only=False` is passed."""

_UNSAFE_VAR = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"

DEEPSPEED_SAFE_GLOBALS = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
)
"""The non-tensor types DeepSpeed 0.19 puts in its checkpoints (ZeRO 1-3 optimizer states: the loss scaler, the
ZeRO stage enum, the parameter-fragment addresses). Each is plain data: built without running any code of the file."""


class CheckpointRefusedError(HarnessError):
    """A checkpoint that holds something other than tensors and the allow-listed DeepSpeed types."""


def force_weights_only() -> None:
    """Make every `torch.load` of this process (and of the processes it starts) read with `weights_only=True`."""
    os.environ[FORCE_VAR] = "1"
    # torch refuses to run when both switches are set; the unsafe one is dropped on purpose.
    os.environ.pop(_UNSAFE_VAR, None)


def deepspeed_safe_globals() -> list[Any]:
    """The classes of `DEEPSPEED_SAFE_GLOBALS` (those of the installed DeepSpeed that exist)."""
    import importlib

    out = []
    for dotted in DEEPSPEED_SAFE_GLOBALS:
        module, _, name = dotted.rpartition(".")
        try:
            out.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # another DeepSpeed release: that type is simply not allowed
            continue
    return out


_GLOBAL_RE = re.compile(r"GLOBAL (\S+) was not an allowed global")


def refused_type(message: str) -> str:
    """The type a weights-only load refused, read from torch's message (or a summary when it names none).

    Args:
        message: the text of torch's `UnpicklingError`.
    """
    m = _GLOBAL_RE.search(message)
    if m:
        return m[1]
    m = re.search(r"Unsupported operand (\d+)|Trying to call reduce for (\S+)|Unsupported class (\S+)", message)
    if m:
        return next(g for g in m.groups() if g)
    return "an object that is not a tensor"


_SAFE_MODULES = ("torch", "collections", "numpy", "_codecs")


def foreign_global(path: str | Path, limit: int = 64 << 20) -> str | None:
    """The first class or function a pickle file names outside torch's and the allow-list's types, or None.

    Reads the opcodes only (`pickletools.genops`: nothing is constructed or run), so the message can name what
    a refused checkpoint tried to build, e.g. `posix.system`, whatever pickle protocol the file uses.

    Args:
        path: a raw pickle file or a torch zip checkpoint (its `data.pkl` is read).
        limit: most pickle bytes read.
    """
    import io
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                if name is None or zf.getinfo(name).file_size > limit:
                    return None
                data = zf.read(name)
        else:
            with open(path, "rb") as fh:
                data = fh.read(limit)
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    allowed = set(DEEPSPEED_SAFE_GLOBALS)
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            dotted = None
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                dotted = arg.replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                dotted = f"{strings[-2]}.{strings[-1]}"
            elif isinstance(arg, str) and ("UNICODE" in op.name or op.name.endswith("STRING")):
                strings.append(str(arg))
                continue
            if dotted and dotted not in allowed and not dotted.startswith(tuple(f"{m}." for m in _SAFE_MODULES)):
                return dotted
    except (ValueError, EOFError, pickle.UnpicklingError, UnicodeDecodeError):
        return None
    return None


@contextlib.contextmanager
def guarded_torch_load() -> Iterator[list[str]]:
    """While active, `torch.load` is weights-only with the DeepSpeed allow-list, and a refusal names its file.

    Yields:
        The files loaded so far (for messages).

    Raises:
        CheckpointRefusedError: a file holds a type outside the allow-list (or is not a checkpoint at all).
    """
    import torch

    force_weights_only()
    real_load = torch.load
    loaded: list[str] = []

    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        kwargs.pop("pickle_module", None)
        name = os.fspath(f) if isinstance(f, str | os.PathLike) else repr(f)
        try:
            with warnings.catch_warnings():
                # torch warns about the pickle protocol of every file DeepSpeed wrote; that is not the user's news.
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                out = real_load(f, *args, **kwargs)
        except pickle.UnpicklingError as exc:
            what = (isinstance(f, str | os.PathLike) and foreign_global(f)) or refused_type(str(exc))
            raise CheckpointRefusedError(
                f"{name}: refusing to load this checkpoint: it holds {what}, which is not a tensor "
                "or one of the DeepSpeed types a checkpoint needs (nothing in it was run)"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            text = " ".join(str(exc).split())[:200]
            raise CheckpointRefusedError(
                f"{name}: cannot read this checkpoint ({type(exc).__name__}: {text})"
            ) from None
        loaded.append(name)
        return out

    with torch.serialization.safe_globals(deepspeed_safe_globals()):
        torch.load = load
        try:
            yield loaded
        finally:
            torch.load = real_load


def load_deepspeed_checkpoint(engine: Any, folder: str | Path, tag: str) -> tuple[Any, dict[str, Any]]:
    """`engine.load_checkpoint(folder, tag)` with every file read weights-only (see the module docstring).

    Args:
        engine: the DeepSpeed engine.
        folder: the checkpoints folder.
        tag: the checkpoint's tag (sub-folder).

    Returns:
        (load path, client state) as DeepSpeed returns them; the client state is {} when absent.

    Raises:
        CheckpointRefusedError: a file of the checkpoint holds a type outside the allow-list, or is damaged.
    """
    with guarded_torch_load():
        path, client = engine.load_checkpoint(str(folder), tag=tag)
    if client is not None and not isinstance(client, dict):
        raise CheckpointRefusedError(f"{Path(folder) / tag}: the checkpoint's client state is not a mapping")
    return path, dict(client or {})
