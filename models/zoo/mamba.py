"""Mamba-VA: per-modality TCNs and selective state-space (Mamba) blocks for valence/arousal (Liang et al., 8th
ABAW, CVPRW 2025, arXiv 2503.10104); the state-space layer is Mamba's (Gu, Dao, "Mamba: linear-time sequence
modeling with selective state spaces", 2023).

    X = [TCN_v(visual) ; TCN_a(audio)]                                   (B, T, 2C)
    X <- X + Mamba(RMSNorm(X))         (`layers` times)                  (residual pre-norm blocks)
    y = tanh(FC(RMSNorm(X)))                                             (B, T, 2)

One Mamba layer: [x ; z] = X W_in; x = SiLU(causal depthwise Conv1D(x)); Delta = softplus(W_dt (x W_x) + b),
B_t, C_t = x W_B, x W_C (input-dependent); the causal scan h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t,
y_t = C_t h_t + D x_t; out = (y * SiLU(z)) W_out. Frame t sees frames <= t only (the scan is causal), so the
padding at a window's end never reaches a valid frame.

The layer comes from a field library, chosen by `MambaVAConfig.backend` (`auto`: `mamba-ssm`'s CUDA kernels where
the package is installed and CUDA is available, else `mambapy`, pure PyTorch). Both name their parameters alike
(in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj), so the same state dict loads into either; the model's
`ssm_backend` names the one in use, and the compare command's table records it. Block count, the residual
pre-norm layout and the RMSNorm are `# our choice` (config `zoo.mamba_va`).
"""

from __future__ import annotations

import torch
from mambapy.mamba import MambaBlock, MambaConfig
from torch import nn

from models.blocks import va_head
from models.dropout import ByteDropout
from models.errors import ModelConfigError
from models.zoo.base import FusionModel, valid_lengths
from models.zoo.configs import MambaVAConfig

try:  # the CUDA kernels are optional: a CPU machine, or one without the package, uses mambapy
    from mamba_ssm import Mamba as MambaSSM
except ImportError:  # pragma: no cover - depends on the machine
    MambaSSM = None


def ssm_backend(requested: str = "auto") -> str:
    """The state-space library to use: `mamba_ssm` or `mambapy`.

    Args:
        requested: `auto` (mamba_ssm where installed and CUDA is available, else mambapy), or a library's name.

    Raises:
        ModelConfigError: `mamba_ssm` is asked for where it is not installed or CUDA is unavailable.
    """
    cuda_kernels = MambaSSM is not None and torch.cuda.is_available()
    if requested == "mamba_ssm" and not cuda_kernels:
        raise ModelConfigError("backend mamba_ssm: the mamba-ssm package with CUDA is not available here; use "
                               "backend auto or mambapy")  # fmt: skip
    if requested == "auto":
        return "mamba_ssm" if cuda_kernels else "mambapy"
    return requested


def mamba_layer(dim: int, d_state: int, d_conv: int, expand: int, backend: str) -> nn.Module:
    """One Mamba layer, (B, T, dim) -> (B, T, dim), from the named library (same parameter names in both).

    Args:
        dim: model width.
        d_state: state size N.
        d_conv: causal convolution kernel.
        expand: inner width factor.
        backend: `mambapy` or `mamba_ssm`.
    """
    if backend == "mamba_ssm":
        return MambaSSM(d_model=dim, d_state=d_state, d_conv=d_conv, expand=expand)
    return MambaBlock(MambaConfig(d_model=dim, n_layers=1, d_state=d_state, d_conv=d_conv, expand_factor=expand))


class MambaVA(FusionModel):
    """Per-modality TCNs, concatenation, residual Mamba blocks, the V/A head."""

    def __init__(self, config: MambaVAConfig):
        """Build the model.

        Args:
            config: widths, blocks, the state-space settings and the backend; see `MambaVAConfig`.
        """
        super().__init__(config)
        d = 2 * config.tcn_channels
        self.ssm_backend = ssm_backend(config.backend)
        self.norms = nn.ModuleList(nn.RMSNorm(d) for _ in range(config.layers))
        self.mixers = nn.ModuleList(
            mamba_layer(d, config.d_state, config.d_conv, config.expand, self.ssm_backend) for _ in range(config.layers)
        )
        self.drop = ByteDropout(config.dropout)
        self.norm = nn.RMSNorm(d)
        self.head = va_head(d, config.head_hidden, config.dropout)

    def fuse(self, x_v: torch.Tensor, x_a: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        """Concatenate, the residual Mamba blocks (causal: suffix padding never reaches a valid frame), head."""
        B, T = x_v.shape[:2]
        valid_lengths(pad_mask, B, T)  # only checks that the padding is at the end
        x = torch.cat([x_v, x_a], dim=-1)  # (B, T, 2C)
        for norm, mixer in zip(self.norms, self.mixers, strict=True):
            x = x + self.drop(mixer(norm(x)))  # (B, T, 2C)
        return torch.tanh(self.head(self.norm(x)))  # (B, T, 2)
