"""Fine-tuning the genuine ImageNet MobileNetV2 (../shared/weights; skipped when absent)."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from safetensors.torch import load_file

from .conftest import make_dataset, train_run


@pytest.mark.weights
def test_finetune_mobilenet_v2_from_imagenet(mobilenet_weights, tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 12, "val": 6}, size=64)
    run = train_run(data, tmp_path / "run", arch="mobilenet_v2", weights="imagenet", freeze_through="features.10",
                    head="seed", image_size=64, epochs=2, optimizer="sgd", lr=0.01, batch_size=12)
    meta = json.loads((run / "run.json").read_text())
    assert "IMAGENET1K_V1" in meta["base_weights"] and "b0353104" in meta["base_weights"]
    assert meta["frozen"] == [f"features.{i}" for i in range(11)]
    assert max(r["val_acc"] for r in meta["epochs"]) >= 0.9
    tuned = load_file(str(run / meta["weights"]["file"]))
    imagenet = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").state_dict()
    # frozen blocks (weights and BatchNorm statistics) are still exactly ImageNet's; later ones have moved
    for key, value in imagenet.items():
        if key.startswith(tuple(f"features.{i}." for i in range(11))):
            assert torch.equal(tuned[key], value), key
    assert not torch.equal(tuned["features.15.conv.1.0.weight"], imagenet["features.15.conv.1.0.weight"])
