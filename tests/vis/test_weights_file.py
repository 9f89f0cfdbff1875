"""`--weights FILE`: local state dicts load safely, with any number of classes, or fail with a clear message."""

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from imagemachines.errors import BadCheckpoint
from imagemachines.models import load_model


class NotATensor:
    pass


def test_safetensors_state_dict_with_other_class_count(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=7)
    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    model = load_model("resnet18", weights=path)
    assert model.layer("logits").channels == 7 and model.weights_id.startswith("file:")
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(model.module(x), net.eval()(x))


def test_pth_state_dict_of_inception_without_aux_head(tmp_path):
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=3)
    path = tmp_path / "inc.pth"
    torch.save(net.state_dict(), path)
    model = load_model("inception_v3", weights=path)
    assert model.layer("logits").channels == 3 and model.input_size == 299 and model.mean == (0.5, 0.5, 0.5)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weight": NotATensor()}, path)
    with pytest.raises(BadCheckpoint, match="pickled objects other than tensors are refused"):
        load_model("resnet18", weights=path)


def test_wrong_architecture_says_so(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(BadCheckpoint, match="does not fit 'mobilenet_v2'"):
        load_model("mobilenet_v2", weights=path)


def test_missing_file(tmp_path):
    with pytest.raises(BadCheckpoint, match="does not exist"):
        load_model("resnet18", weights=tmp_path / "nope.pth")
