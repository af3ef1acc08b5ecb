"""The challenge baseline's ResNet: shapes, torchvision's layout and ImageNet weights file, FLOP counts."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import resnet18, resnet50

from models import (
    CheckpointError,
    CheckpointShapeError,
    ModelConfigError,
    ModelError,
    count_flops,
    count_train_flops,
    create_model,
    get_config,
    list_models,
    read_state_dict,
)
from models.baseline import IMAGENET_CLASSIFIER, ResNetVA, load_imagenet_weights

NARROW = {"img_size": 64, "width": 8, "layers": (1, 1, 1, 1)}


def _official_file(tmp_path, seed: int = 0):
    """torchvision's resnet50 with random weights and non-trivial BatchNorm statistics, saved as torchvision's
    ImageNet file is (a state dict written by torch.save)."""
    torch.manual_seed(seed)
    tv = resnet50(weights=None)
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.2, 0.4)  # keeps 16 residual blocks of random weights from overflowing
    path = tmp_path / "resnet50-11ad3fa6.pth"
    torch.save(tv.state_dict(), path)
    return tv, path


def test_registered_and_shapes() -> None:
    assert list_models("resnet") == ["resnet50_va"]
    model = create_model("resnet50_va", **NARROW)
    assert isinstance(model, ResNetVA) and model.config.feature_dim == 8 * 8 * 4
    x = torch.randn(5, 3, 64, 64) * 10
    out = model(x)
    assert out.shape == (5, 2) and out.abs().max() < 1.0  # tanh keeps it inside (-1, 1)
    assert model.forward_features(x).shape == (5, 256)
    with pytest.raises(ModelError, match=r"\(B, 3, 64, 64\), got \(5, 3, 48, 48\)"):
        model(torch.randn(5, 3, 48, 48))


def test_config_checks() -> None:
    assert get_config("resnet50_va", layers=[2, 2]).layers == (2, 2)
    with pytest.raises(ModelConfigError, match="img_size 16 must be >= 32"):
        get_config("resnet50_va", img_size=16)
    with pytest.raises(ModelConfigError, match="layers must be positive"):
        get_config("resnet50_va", layers=[3, 0])


def test_state_dict_names_are_torchvisions() -> None:
    ours = set(create_model("resnet50_va").state_dict())
    theirs = set(resnet50(weights=None).state_dict())
    assert theirs - ours == set(IMAGENET_CLASSIFIER)
    assert ours - theirs == {"head.weight", "head.bias"}


def test_official_weights_file_round_trip(tmp_path) -> None:
    tv, path = _official_file(tmp_path)
    model = create_model("resnet50_va", img_size=64)
    head = model.head.weight.detach().clone()
    loaded = load_imagenet_weights(model, read_state_dict(path), source=str(path))
    assert len(loaded) == len(tv.state_dict()) - 2
    state = model.state_dict()
    for k, v in tv.state_dict().items():
        if k not in IMAGENET_CLASSIFIER:
            assert torch.equal(state[k], v), k
    assert torch.equal(model.head.weight, head)  # the valence/arousal head keeps its initialisation
    # Same function as torchvision's network: its pooled feature equals ours.
    tv.fc = torch.nn.Identity()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        want, got = tv.eval()(x), model.eval().forward_features(x)
    assert want.abs().mean() > 1e-3
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_wrong_weights_files_are_refused_with_the_file_named(tmp_path) -> None:
    model = create_model("resnet50_va", img_size=64)
    other = tmp_path / "resnet18-f37072fd.pth"
    torch.save(resnet18(weights=None).state_dict(), other)
    with pytest.raises(CheckpointError, match=r"resnet18-f37072fd\.pth: not torchvision's resnet50 ImageNet weights"):
        load_imagenet_weights(model, read_state_dict(other), source=str(other))
    _tv, path = _official_file(tmp_path)
    need = r"need width 64 and layers \(3, 4, 6, 3\); this network has width 8"
    with pytest.raises(CheckpointShapeError, match=need):
        load_imagenet_weights(create_model("resnet50_va", **NARROW | {"layers": (3, 4, 6, 3)}),
                              read_state_dict(path), source=str(path))  # fmt: skip
    pickled = tmp_path / "whole_model.pth"
    torch.save(resnet18(weights=None), pickled)  # a pickled module, not a state dict: weights_only refuses it
    with pytest.raises(CheckpointError, match=r"whole_model\.pth: cannot read checkpoint: it holds objects"):
        read_state_dict(pickled)
    with pytest.raises(CheckpointError, match=r"nothing\.pth: checkpoint file does not exist"):
        read_state_dict(tmp_path / "nothing.pth")


def test_flops_match_torch_counter() -> None:
    assert count_flops("resnet50_va", T=1) == 8_174_280_704  # ResNet-50's familiar 4.1 GMACs at 224 px
    model = create_model("resnet50_va", img_size=64, width=8, layers=(2, 1, 1, 2))
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert count_flops(model, T=3) == counter.get_total_flops()
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    assert count_train_flops(model, T=3) == counter.get_total_flops()
