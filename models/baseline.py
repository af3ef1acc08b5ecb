"""The challenge baseline (Kollias et al., 8th ABAW): a per-frame ResNet-50 with a linear valence/arousal head.

The network is torchvision's ResNet-50 layout written out here, with the same state-dict names (`conv1`, `bn1`,
`layer1.0.conv1`, ..., `layerN.0.downsample.0/1`), so torchvision's ImageNet weights file loads into it
(`load_imagenet_weights`); only the 1000-way classifier `fc` is replaced by a 2-way `head`. It is written out
rather than taken from `torchvision.models.resnet50` so that the stem width and the blocks per stage are config
fields: the CPU demo trains a narrow ResNet from scratch, the paper's row the full one from ImageNet.

The head is linear, then tanh. Both targets lie in [-1, 1]; tanh keeps the output there without the dead gradient
of a clamp (a clipped output that overshoots gets no gradient back), and it is the head of the stage-1 ViT too, so
both frame-level models are trained against the CCC loss the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from models.configs import ResNetConfig
from models.errors import CheckpointError, CheckpointShapeError, ModelError
from models.vit import check_image_batch

EXPANSION = 4
"""Output channels of a bottleneck block as a multiple of its inner width (ResNet-50's 4)."""

RESNET50 = (64, (3, 4, 6, 3))
"""(width, layers) of ResNet-50, the only shape torchvision's ImageNet weights fit."""

IMAGENET_CLASSIFIER = ("fc.weight", "fc.bias")
"""Keys of torchvision's 1000-way ImageNet classifier, which the valence/arousal head replaces."""


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (v1.5: the stride sits on the 3x3 convolution)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        """Build the block.

        Args:
            in_channels: input channels.
            planes: inner width; the block outputs `planes * EXPANSION` channels.
            stride: spatial stride of the 3x3 convolution (and of the shortcut's projection).
        """
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, planes * 4, H / stride, W / stride)."""
        _B, C, _H, _W = x.shape
        if self.conv1.in_channels != C:
            raise ModelError(f"bottleneck: {self.conv1.in_channels} input channels expected, got {C}")
        h = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        h = self.relu(self.bn2(self.conv2(h)))  # (B, planes, H', W')
        h = self.bn3(self.conv3(h))  # (B, 4 planes, H', W')
        shortcut = x if self.downsample is None else self.downsample(x)  # (B, 4 planes, H', W')
        return self.relu(h + shortcut)


class ResNetVA(nn.Module):
    """The baseline network: ResNet stem and bottleneck stages, global average pool, linear head, tanh."""

    def __init__(self, config: ResNetConfig):
        """Build the network, initialised as torchvision initialises its ResNets.

        Args:
            config: sizes; see `ResNetConfig`.
        """
        super().__init__()
        self.config = config
        w = config.width
        self.conv1 = nn.Conv2d(config.in_chans, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = w
        for i, blocks in enumerate(config.layers):
            planes = w * 2**i
            stage = [Bottleneck(channels, planes, stride=1 if i == 0 else 2)]
            channels = planes * EXPANSION
            stage += [Bottleneck(channels, planes) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(config.feature_dim, 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # A small head, as the ViT's: the first predictions sit near 0, inside tanh's linear range.
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def stages(self) -> list[nn.Sequential]:
        """The bottleneck stages `layer1` ... `layerN`."""
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.config.layers))]

    def check_images(self, x: torch.Tensor) -> int:
        """The batch size of an image batch, after checking it is (B, in_chans, img_size, img_size).

        Raises:
            ModelError: on any other shape.
        """
        return check_image_batch(x, self.config.in_chans, self.config.img_size, "the ResNet")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled frame feature: (B, C, S, S) -> (B, feature_dim)."""
        B = self.check_images(x)
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, width, S/4, S/4)
        for stage in self.stages:
            h = stage(h)  # (B, 4 width 2^i, S/2^(i+2), S/2^(i+2))
        return self.avgpool(h).reshape(B, self.config.feature_dim)  # (B, F, 1, 1) -> (B, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(Valence, arousal) per image: (B, C, S, S) -> (B, 2) in [-1, 1]."""
        B = self.check_images(x)
        feats = self.forward_features(x)  # (B, F)
        return torch.tanh(self.head(self.head_drop(feats))).reshape(B, 2)  # (B, 2)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def resnet_flops(config: ResNetConfig) -> int:
    """Analytic forward FLOPs (2 x MACs of the convolutions and the head) of one image.

    Args:
        config: the network's sizes (`img_size` sets the feature-map sides).
    """
    macs = 0
    s = _conv_out(config.img_size, 7, 2, 3)
    macs += s * s * 49 * config.in_chans * config.width
    s = _conv_out(s, 3, 2, 1)  # max pool
    channels = config.width
    for i, blocks in enumerate(config.layers):
        planes = config.width * 2**i
        out = planes * EXPANSION
        for b in range(blocks):
            stride = 2 if (i > 0 and b == 0) else 1
            s2 = _conv_out(s, 3, stride, 1)
            macs += s * s * channels * planes  # 1x1 reduce
            macs += s2 * s2 * 9 * planes * planes  # 3x3
            macs += s2 * s2 * planes * out  # 1x1 expand
            if b == 0 and (stride != 1 or channels != out):
                macs += s2 * s2 * channels * out  # projection shortcut
            s, channels = s2, out
    macs += config.feature_dim * 2
    return 2 * macs


def resnet_train_flops(config: ResNetConfig) -> int:
    """Analytic FLOPs of one image's training step (forward + backward; everything trains, the image needs no
    gradient, so the stem convolution has no input-gradient product).

    Args:
        config: the network's sizes.
    """
    s = _conv_out(config.img_size, 7, 2, 3)
    stem_input_grad = 2 * s * s * 49 * config.in_chans * config.width
    return 3 * resnet_flops(config) - stem_input_grad


def load_imagenet_weights(model: ResNetVA, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Copy torchvision's ImageNet ResNet-50 weights (a state dict) into the baseline's backbone.

    Every backbone tensor must be in `state` with the model's shape (BatchNorm running statistics included); the
    ImageNet classifier `fc.*` is dropped and the valence/arousal head keeps its initialisation.

    Args:
        model: the network to fill (in place); ImageNet weights need `width=64, layers=(3, 4, 6, 3)`.
        state: the file's tensors by name (torchvision's `resnet50(...).state_dict()` as saved by torch.save).
        source: the file, for messages.

    Returns:
        the keys loaded.

    Raises:
        CheckpointError: `state` misses backbone tensors or holds tensors the network has no place for (not a
            torchvision ResNet-50 state dict).
        CheckpointShapeError: a tensor's shape differs from the model's (another depth or width).
    """
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    theirs = {k: v for k, v in state.items() if k not in IMAGENET_CLASSIFIER}
    missing = [k for k in own if k not in theirs]
    unexpected = [k for k in theirs if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} backbone tensor(s) missing ({', '.join(missing[:4])}"
                         f"{', ...' if len(missing) > 4 else ''})")  # fmt: skip
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:4])}"
                         f"{', ...' if len(unexpected) > 4 else ''})")  # fmt: skip
        c = model.config
        if (c.width, c.layers) != RESNET50:
            parts.append(f"ImageNet ResNet-50 weights need width 64 and layers (3, 4, 6, 3); this network has width "
                         f"{c.width} and layers {c.layers}")  # fmt: skip
        raise CheckpointError(
            f"{source}: not torchvision's resnet50 ImageNet weights (a state dict of conv1, bn1, layer1-4, fc), or "
            "not this network's: " + "; ".join(parts)
        )
    for k, v in theirs.items():
        if tuple(v.shape) != tuple(own[k].shape):
            c = model.config
            raise CheckpointShapeError(
                k, tuple(own[k].shape), tuple(v.shape),
                f"{source} (ImageNet ResNet-50 weights need width 64 and layers (3, 4, 6, 3); this network has "
                f"width {c.width} and layers {c.layers})",
            )  # fmt: skip
    model.load_state_dict({**model.state_dict(), **theirs}, strict=True)
    return sorted(theirs)
