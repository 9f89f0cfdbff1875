"""Heads, auxiliary classifiers and freezing (models/heads.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imagemachines.errors import UnknownLayer, UserError
from imagemachines.models.heads import (
    SEED_HIDDEN,
    build_classifier,
    freeze_through,
    frozen_modules,
    rebuild_classifier,
    resolve_freeze,
    train_mode,
)


def test_seed_head_is_pool_1024_relu_classes():
    bb = build_classifier("resnet18", 4, "seed", aux=False, weights="none")
    assert bb.head == "fc"
    fc = bb.module.fc
    assert [type(m) for m in fc] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (fc[0].in_features, fc[0].out_features, fc[2].out_features) == (512, SEED_HIDDEN, 4)
    assert bb.module.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 4)


def test_linear_head_replaces_the_last_linear_layer():
    bb = build_classifier("mobilenet_v3_small", 5, "linear", aux=False, weights="none")
    assert bb.head == "classifier.3"
    assert isinstance(bb.module.classifier[3], nn.Linear) and bb.module.classifier[3].out_features == 5


def test_freeze_through_freezes_exactly_the_layers_before():
    module = build_classifier("resnet18", 3, "seed", aux=False, weights="none").module
    names = freeze_through(module, "layer2", 32, head="fc")
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2"]
    for name, p in module.named_parameters():
        frozen = name.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")
        assert p.requires_grad is not frozen, name


def test_frozen_layers_keep_weights_and_batchnorm_statistics_while_training():
    torch.manual_seed(0)
    module = build_classifier("resnet18", 3, "linear", aux=False, weights="none").module
    frozen = frozen_modules(module, freeze_through(module, "layer1", 32, head="fc"))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.1)
    train_mode(module, frozen)
    assert not module.layer1.training and module.layer2.training
    loss = nn.functional.cross_entropy(module(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = module.state_dict()
    for key in before:
        top = key.split(".")[0]
        if top in ("conv1", "bn1", "layer1"):
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["layer2.0.bn1.running_mean"], after["layer2.0.bn1.running_mean"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


def test_seed_default_freezes_inception_through_keras_mixed5():
    assert resolve_freeze("inception_v3", "auto", "imagenet") == "Mixed_6c"
    assert resolve_freeze("inception_v3", "mixed5", "imagenet") == "Mixed_6c"
    assert resolve_freeze("inception_v3", "auto", "none") == "none"
    assert resolve_freeze("resnet18", "auto", "imagenet") == "none"
    bb = build_classifier("inception_v3", 3, "seed", aux=False, weights="none")
    names = freeze_through(bb.module, "Mixed_6c", 96, head=bb.head)
    assert names[-4:] == ["Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c"] and names[0] == "Conv2d_1a_3x3"
    assert not any(p.requires_grad for p in bb.module.Mixed_6c.parameters())
    assert all(p.requires_grad for p in bb.module.Mixed_6d.parameters())
    assert bb.mean == bb.std == (0.5, 0.5, 0.5) and bb.module.transform_input is False


def test_inception_aux_head_removed_or_retargeted():
    plain = build_classifier("inception_v3", 3, "seed", aux=False, weights="none").module
    assert plain.AuxLogits is None and isinstance(plain.dropout, nn.Identity)
    out = plain.train()(torch.zeros(2, 3, 96, 96))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)  # no InceptionOutputs without aux
    with_aux = build_classifier("inception_v3", 3, "seed", aux=True, weights="none").module
    with torch.no_grad():
        out = with_aux.train()(torch.zeros(2, 3, 299, 299))  # the aux head needs full-size images
    assert out.logits.shape == (2, 3) and out.aux_logits.shape == (2, 3)
    assert isinstance(with_aux.eval()(torch.zeros(1, 3, 96, 96)), torch.Tensor)


def test_rebuild_has_the_same_parameters_as_build():
    built = build_classifier("inception_v3", 4, "seed", aux=False, weights="none").module.state_dict()
    rebuilt = rebuild_classifier("inception_v3", 4, "seed", aux=False).state_dict()
    assert {k: v.shape for k, v in built.items()} == {k: v.shape for k, v in rebuilt.items()}


def test_bad_freeze_layers_are_explained():
    module = build_classifier("resnet18", 3, "seed", aux=False, weights="none").module
    with pytest.raises(UnknownLayer, match="Did you mean: layer2"):
        freeze_through(module, "layer22", 32, head="fc")
    with pytest.raises(UserError, match="freeze the new head"):
        freeze_through(module, "fc.0", 32, head="fc")
    with pytest.raises(UserError, match="aux"):
        build_classifier("resnet18", 3, "seed", aux=True, weights="none")
    with pytest.raises(UserError, match="--head seed or --head linear"):
        build_classifier("resnet18", 3, "big", aux=False, weights="none")


def test_backbone_freezes_everything_but_the_head():
    module = build_classifier("resnet18", 3, "seed", aux=False, weights="none").module
    freeze_through(module, "backbone", 32, head="fc")
    assert [n for n, p in module.named_parameters() if p.requires_grad] == [
        "fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"]
