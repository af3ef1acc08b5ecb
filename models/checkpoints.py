"""Loading released ViT/MAE weights into our models, with a report of what matched.

Accepted files:
- the MAE release (`mae_pretrain_vit_large.pth`): a dict whose key `model` holds timm-style names (`cls_token`,
  `pos_embed`, `patch_embed.proj.*`, `blocks.N.*`, `norm.*`), possibly with the decoder (`decoder_*`,
  `mask_token`);
- timm's `vit_large_patch16_224.mae` state dict: a plain dict with the same encoder names and no head;
- the same dicts as `.safetensors`.

`.pth/.pt/.bin` files are read with `torch.load(..., weights_only=True)`: no pickled code runs. A tensor whose
shape differs from the model's is an error, except a fixed sin-cos position embedding of another grid size, which
is a function of the grid and is kept as the model computed it (reported under `recomputed`).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.errors import CheckpointError, CheckpointShapeError
from models.mae import MAEViT
from models.vit import VAViT

FIXED_POSITION_KEYS = ("pos_embed", "decoder_pos_embed")
"""Buffers holding fixed sin-cos embeddings: recomputed, not loaded, when a checkpoint's grid differs."""

MAE_DECODER_PREFIXES = ("decoder_", "mask_token")
"""Keys of the MAE release that only the pre-training decoder uses."""


@dataclass(frozen=True)
class LoadReport:
    """What a checkpoint load did, key by key.

    Args:
        source: where the weights came from (a file name).
        loaded: model keys filled from the checkpoint.
        missing: model keys the checkpoint lacks (left as initialised).
        unexpected: checkpoint keys the model has no place for.
        ignored: checkpoint keys skipped on purpose (the MAE decoder when loading a valence/arousal ViT).
        new: model keys expected to be absent and left as initialised (the regression head).
        recomputed: fixed position embeddings kept as the model computed them (the checkpoint's grid differs).
    """

    source: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    ignored: tuple[str, ...] = ()
    new: tuple[str, ...] = ()
    recomputed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every model key was filled or expected to be new, and every checkpoint key was used or ignored."""
        return not self.missing and not self.unexpected

    def __str__(self) -> str:
        lines = [
            f"{self.source}: loaded {len(self.loaded)} tensors; {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.ignored)} ignored, {len(self.new)} new, "
            f"{len(self.recomputed)} recomputed"
        ]
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("new", self.new),
                            ("recomputed", self.recomputed)):  # fmt: skip
            if keys:
                lines.append(f"  {label}: {', '.join(keys)}")
        return "\n".join(lines)


def _unwrap(obj: object, source: str) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded object: `obj['model']`, `obj['state_dict']` or `obj` itself."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: expected a dict of tensors, found {type(obj).__name__}")
    for wrapper in ("model", "state_dict"):
        if isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not named tensors: {', '.join(bad[:10])}")
    if not obj:
        raise CheckpointError(f"{source}: holds no tensors")
    # Weights saved from a DistributedDataParallel wrapper carry a 'module.' prefix on every key.
    if all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return dict(obj)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat {name: tensor} dict on the CPU.

    Args:
        path: a `.pth`/`.pt`/`.bin` file (torch.save) or a `.safetensors` file.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, holds pickled objects, or no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: cannot read checkpoint: it holds objects other than tensors, which weights_only loading "
            f"refuses (re-save only the state dict) ({exc})"
        ) from exc
    except Exception as exc:  # torch and safetensors raise many types for a damaged file
        raise CheckpointError(
            f"{path}: cannot read checkpoint, the file is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    return _unwrap(obj, str(path))


def load_state(
    model: nn.Module, state: dict[str, torch.Tensor], source: str = "state dict", strict: bool = False
) -> LoadReport:
    """Copy matching tensors of `state` into `model` and report the rest by name.

    For a `VAViT`, the MAE decoder keys are ignored and the regression head is new; for any model, a fixed
    position embedding of another grid size is recomputed rather than loaded.

    Args:
        model: the model to fill (in place).
        state: checkpoint tensors by name.
        source: name for messages.
        strict: raise when anything is missing or unexpected.

    Raises:
        CheckpointShapeError: a tensor's shape differs from the model's.
        CheckpointError: with `strict`, when keys are missing or unexpected.
    """
    state = _unwrap(state, source)
    own = model.state_dict()
    is_va = isinstance(model, VAViT) and not isinstance(model, MAEViT)
    ignore_prefixes = MAE_DECODER_PREFIXES if is_va else ()
    new_prefixes = ("head.",) if is_va else ()

    take: dict[str, torch.Tensor] = {}
    loaded, unexpected, ignored, recomputed = [], [], [], []
    for key, tensor in state.items():
        if key not in own:
            (ignored if key.startswith(ignore_prefixes) else unexpected).append(key)
            continue
        want = tuple(own[key].shape)
        if tuple(tensor.shape) != want:
            if key in FIXED_POSITION_KEYS:
                recomputed.append(key)
                continue
            raise CheckpointShapeError(key, want, tuple(tensor.shape), source)
        take[key] = tensor
        loaded.append(key)
    absent = [k for k in own if k not in take and k not in recomputed]
    new = [k for k in absent if k.startswith(new_prefixes)]
    missing = [k for k in absent if not k.startswith(new_prefixes)]
    report = LoadReport(source, tuple(loaded), tuple(missing), tuple(unexpected), tuple(ignored), tuple(new),
                        tuple(recomputed))  # fmt: skip
    if strict and not report.ok:
        raise CheckpointError(str(report))
    model.load_state_dict(take, strict=False)
    return report


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = False) -> LoadReport:
    """Read a checkpoint file and load it into `model` (see `read_state_dict` and `load_state`).

    Args:
        model: the model to fill (in place).
        path: the checkpoint file.
        strict: raise when anything is missing or unexpected.
    """
    return load_state(model, read_state_dict(path), source=str(path), strict=strict)


def transfer_mae_encoder(mae: MAEViT, vit: VAViT) -> LoadReport:
    """Copy a pre-trained MAE's encoder into a valence/arousal ViT (stage 1: pre-training -> fine-tuning).

    Args:
        mae: the pre-trained model.
        vit: the model to fine-tune; its config must have the same encoder sizes (its freezing is kept).

    Raises:
        CheckpointShapeError: the encoder sizes differ.
        CheckpointError: an encoder tensor is missing on either side.
    """
    return load_state(vit, mae.encoder_state_dict(), source="MAE encoder", strict=True)
