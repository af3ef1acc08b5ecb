"""Model weights as safetensors files: the full state dict of an engine (gathered under ZeRO-3), saving and loading
with located errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from core.atomic import atomic_write_bytes
from core.errors import HarnessError


class WeightsError(HarnessError):
    """A weights file that cannot be read: names the file and the reason."""


# ---------------------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------------------


def full_state_dict(engine: Any) -> dict[str, torch.Tensor]:
    """The module's complete float32 CPU state dict (gathers ZeRO-3 shards; every process must call it)."""
    module = engine.module
    if engine.zero_optimization_stage() == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}
    return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}


def save_weights(path: os.PathLike | str, state: Mapping[str, torch.Tensor]) -> None:
    """Write a state dict as safetensors, atomically."""
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.contiguous() for k, v in state.items()}))


def load_weights(path: os.PathLike | str) -> dict[str, torch.Tensor]:
    """Read a safetensors state dict (CPU).

    Raises:
        WeightsError: the file is missing, not a regular file, or not a readable safetensors file (a corrupt
            header, truncated data); the message names it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from submissions import FormatError
    from submissions.limits import check_regular_file

    try:
        # safetensors maps the file; a FIFO or a folder is refused before it is opened.
        check_regular_file(path, "weights file", 1 << 40)
        return load_file(str(path))
    except FormatError as exc:
        p = exc.problems[0]
        raise WeightsError(f"{p.path}: {p.reason}") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise WeightsError(f"{path}: not a readable safetensors weights file ({type(exc).__name__}: {text})") from None
