"""The rival stage-2 fusion models of the field (Table II measured), each written from its paper, registered beside
`bdca` and its ablations and called like it: `model(visual, audio, pad_mask) -> (B, T, 2)` in [-1, 1].

`ZOO` maps each registered name to its configuration class, its model class and its citation.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from models.zoo.base import FusionModel
from models.zoo.configs import (
    DCAConfig,
    JCAConfig,
    LFANConfig,
    MambaVAConfig,
    MulTConfig,
    RJCAConfig,
    TCNTransformerConfig,
    ZooConfig,
)
from models.zoo.jca import DCA, JCA, RJCA, JointCrossAttention, joint_correlation
from models.zoo.lfan import LFAN, modality_attention
from models.zoo.mamba import MambaVA, ssm_backend
from models.zoo.mult import CrossmodalLayer, MulT
from models.zoo.tcn_transformer import TCNTransformer


@dataclass(frozen=True)
class ZooEntry:
    """One rival.

    Args:
        config: its configuration class.
        model: its model class.
        citation: who published it, where.
    """

    config: type[ZooConfig]
    model: type[FusionModel]
    citation: str


ZOO: dict[str, ZooEntry] = {
    "lfan": ZooEntry(LFANConfig, LFAN, "Zhang et al., leader-follower attentive fusion, ABAW3 CVPRW 2022 / ABAW5"),
    "jca": ZooEntry(JCAConfig, JCA, "Praveen et al., joint cross-attention, CVPRW 2022"),
    "rjca": ZooEntry(RJCAConfig, RJCA, "Praveen et al., recursive joint cross-attention, ICASSP 2023; RJCMA, "
                                       "CVPRW 2024, arXiv 2403.13659"),
    "dca": ZooEntry(DCAConfig, DCA, "Praveen & Alam, dynamic cross-attention, ICME 2024"),
    "mult": ZooEntry(MulTConfig, MulT, "Tsai et al., multimodal transformer, ACL 2019"),
    "mamba_va": ZooEntry(MambaVAConfig, MambaVA, "Liang et al., TCN + Mamba, 8th ABAW, arXiv 2503.10104"),
    "tcn_transformer": ZooEntry(TCNTransformerConfig, TCNTransformer, "Zhou et al., TCN + Transformer, ABAW5, "
                                                                      "arXiv 2303.08356"),
}
"""The rivals by registered name."""


def build_zoo_model(config: ZooConfig) -> nn.Module:
    """The rival a configuration describes (randomly initialised)."""
    for entry in ZOO.values():
        if type(config) is entry.config:
            return entry.model(config)
    raise TypeError(f"not a zoo configuration: {type(config).__name__}")


__all__ = ["DCA", "JCA", "LFAN", "RJCA", "ZOO", "CrossmodalLayer", "DCAConfig", "FusionModel", "JCAConfig",
           "JointCrossAttention", "LFANConfig", "MambaVA", "MambaVAConfig", "MulT", "MulTConfig", "RJCAConfig",
           "TCNTransformer", "TCNTransformerConfig", "ZooConfig", "ZooEntry", "build_zoo_model", "joint_correlation",
           "modality_attention", "ssm_backend"]  # fmt: skip
