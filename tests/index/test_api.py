"""The index's Python API on the planted red-blob detector: known top/bottom examples, positions, maps."""

from __future__ import annotations

import numpy as np
from PIL import Image

from imagemachines.index import build_index, open_index
from imagemachines.index.maps import activation_maps, heat_overlay, peak_cell

from .conftest import RADIUS


def _inside(box, centre, slack=RADIUS):
    x0, y0, x1, y1 = box
    x, y = centre
    return x0 - slack <= x <= x1 + slack and y0 - slack <= y <= y1 + slack


def test_top_examples_are_the_red_images_strongest_first_with_the_blob_position(blobnet, collection, tmp_path):
    out = build_index(blobnet, collection.root, tmp_path / "idx", k=8, chunk_size=4, progress=False)
    idx = open_index(out)
    assert idx.n_images == 16 and idx.layers == ["features.0", "features.1", "features.2", "pool.0", "logits"]
    top = idx.examples("features.2", 0, k=len(collection.red))
    assert [idx.image(e.image_id).path for e in top] == [p for p, _ in collection.red]
    assert all(a.value > b.value > 0 for a, b in zip(top, top[1:], strict=False))
    assert top[0].percentile == 100.0
    for e, (_path, centre) in zip(top, collection.red, strict=True):
        assert _inside(e.box, centre), (e, centre)
        x0, y0, x1, y1 = e.box
        assert x1 - x0 == 3 and y1 - y0 == 2  # a 32×32 cell of a 96×64 image
    # the red images are also the top of the 'red' class logit
    assert {idx.image(e.image_id).path for e in idx.examples("logits", 0, k=6)} == {p for p, _ in collection.red}


def test_bottom_examples_are_the_blue_tints_most_negative_first(blobnet, collection, tmp_path):
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=5, progress=False))
    bottom = idx.examples("features.0", 0, negative=True)
    assert [idx.image(e.image_id).path for e in bottom] == collection.tints
    assert all(e.value < 0 for e in bottom) and bottom[0].percentile == 0.0


def test_activation_map_peak_is_the_recorded_cell_and_on_the_blob(blobnet, collection, tmp_path):
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=3, progress=False))
    for e in idx.examples("features.2", 0):
        img = Image.open(idx.image_file(e.image_id))
        amap = activation_maps(blobnet, [img], "features.2", [0])
        assert amap.shape == (1, 1, 32, 32) and amap.dtype == np.float32
        assert peak_cell(amap[0, 0]) == e.cell
        assert abs(float(amap.max()) - e.value) < 1e-5
        overlay = heat_overlay(img, amap[0, 0])
        assert overlay.size == img.size
        centre = dict(collection.red)[idx.image(e.image_id).path]
        # the colour layer alone (overlay = ½ image + ½ heat colours): bright on the blob, black elsewhere
        heat = 2 * np.asarray(overlay, dtype=float) - np.asarray(img.convert("RGB"), dtype=float)
        assert heat[centre[1], centre[0]].sum() > 400 and heat[2, 2].sum() < 50
