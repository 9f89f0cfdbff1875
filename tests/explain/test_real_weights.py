"""The genuine MobileNetV2 on a shared painting (skipped when ../shared is absent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imagemachines.attribution import attribute, open_image
from imagemachines.attribution.inputs import model_input
from imagemachines.explain import explain_image
from tests.conftest import SHARED

PAINTING = SHARED / "data" / "paintings" / "images" / "still_life" / "A_5_09.jpg"

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    import shutil

    from tests.conftest import MOBILENET_FILE

    if not MOBILENET_FILE.is_file() or not PAINTING.is_file():
        pytest.skip("the shared weights or paintings are absent")
    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copyfile(MOBILENET_FILE, home / "hub" / "checkpoints" / MOBILENET_FILE.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        from imagemachines.models import load_model

        yield load_model("mobilenet_v2")


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_class_evidence_lies_in_the_painting_not_in_grey(mobilenet, method):
    """The painting beside an equal field of flat grey: the evidence for its top class is on the painting."""
    painting = open_image(PAINTING)
    w, h = painting.size
    both = Image.new("RGB", (2 * w, h), (128, 128, 128))
    both.paste(painting, (0, 0))
    with torch.no_grad():
        target = int(mobilenet.module(mobilenet.normalize(model_input(mobilenet, both))).argmax())
    heat = attribute(mobilenet, both, target, method=method)
    assert heat.shape == (h, 2 * w)
    assert heat[:, :w].sum() > 2 * heat[:, w:].sum()  # 7×7 cells, upsampled: some heat bleeds over the seam
    assert heat[:, 3 * w // 2:].sum() < 0.05 * heat.sum()  # the grey away from the seam holds next to nothing


def test_reverse_lookup_on_mobilenet(mobilenet):
    e = explain_image(mobilenet, open_image(PAINTING), k=5)
    assert e.layer == "features.18" and len(e.units) == 5 and e.maps[e.units[0].channel].shape == (7, 7)
    assert [h.value for h in e.units] == sorted((h.value for h in e.units), reverse=True)
    assert np.isfinite(e.pooled).all() and e.pooled.shape == (1280,)
