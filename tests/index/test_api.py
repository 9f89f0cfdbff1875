"""The index's Python API on the planted red-blob detector: known top/bottom examples, positions, maps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imagemachines.index import build_index, open_index
from imagemachines.index.maps import activation_maps, heat_overlay, peak_cell
from imagemachines.index.merge import HIST_BINS

from .conftest import RADIUS


def _inside(box, centre, slack=RADIUS):
    x0, y0, x1, y1 = box
    x, y = centre
    return x0 - slack <= x <= x1 + slack and y0 - slack <= y <= y1 + slack


def test_top_examples_are_the_red_images_strongest_first_with_the_blob_position(blobnet, collection, tmp_path):
    out = build_index(blobnet, collection.root, tmp_path / "idx", k=8, chunk_size=4, progress=False)
    idx = open_index(out)
    assert idx.n_images == 16 and idx.layers == ["features.0", "features.1", "features.2", "pool.0", "logits"]
    assert len(idx.examples("features.2", 0)) == 8  # k of 16 images, merged from four chunks
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
        assert peak_cell(amap[0, 0], idx.ranking) == e.cell
        assert abs(float(amap.max()) - e.value) < 1e-5
        overlay = heat_overlay(img, amap[0, 0])
        assert overlay.size == img.size
        centre = dict(collection.red)[idx.image(e.image_id).path]
        # the colour layer alone (overlay = ½ image + ½ heat colours): bright on the blob, black elsewhere
        heat = 2 * np.asarray(overlay, dtype=float) - np.asarray(img.convert("RGB"), dtype=float)
        assert heat[centre[1], centre[0]].sum() > 400 and heat[2, 2].sum() < 50


def test_statistics_quantiles_and_pooled_rows_agree_with_every_images_values(blobnet, collection, tmp_path):
    """With k as large as the collection, the top examples list every image's spatial maximum: the unit's
    count, mean, std, min, max, quantiles (to a histogram bin) and percentiles must agree with those values, and
    each pooled row must be the spatial mean of that image's activation map."""
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=16, chunk_size=3, batch_size=2,
                                 progress=False))
    for layer, channel in (("features.2", 0), ("features.0", 1)):
        examples = idx.examples(layer, channel)
        values = np.array([e.value for e in examples])
        assert len(values) == 16 and sorted({e.image_id for e in examples}) == list(range(16))
        s = idx.stats(layer, channel)
        assert s.count == 16 and (s.min, s.max) == (values.min(), values.max())
        assert s.mean == pytest.approx(values.mean(), rel=1e-5, abs=1e-6)
        assert s.std == pytest.approx(values.std(), rel=1e-5, abs=1e-6)
        assert s.std > 0.1  # the spread is real, not a default
        tolerance = 2 * (s.max - s.min) / HIST_BINS + 2e-3 * np.abs(values).max()  # a bin; float16 maxima
        for q, v in s.quantiles.items():
            assert abs(v - np.quantile(values, q, method="inverted_cdf")) <= tolerance, (layer, q)
        for e in examples:  # linear inside a bin: between the share below the value and the share up to it
            below, upto = 100 * (values < e.value).mean(), 100 * (values <= e.value).mean()
            assert below - 1e-6 <= e.percentile <= upto + 1e-6, (layer, e)
        pooled = np.asarray(idx.pooled(layer), dtype=np.float32)
        assert pooled.shape == (16, idx.channels(layer))
        for image_id in (0, 7, 15):
            img = Image.open(idx.image_file(image_id))
            amap = activation_maps(blobnet, [img], layer, [channel])
            assert pooled[image_id, channel] == pytest.approx(float(amap.mean()), rel=2e-3, abs=2e-3)


def test_an_index_without_pooled_rows_has_no_pooled_files(blobnet, collection, tmp_path):
    from imagemachines.index.store import pooled_file

    out = build_index(blobnet, collection.root, tmp_path / "idx", k=3, pooled=False, progress=False)
    idx = open_index(out)
    assert all(idx.pooled(layer) is None and not pooled_file(out, layer).exists() for layer in idx.layers)
    assert idx.examples("features.2", 0)[0].value > 0  # the rest of the index is there


def test_the_collections_best_painting_computed_again_is_still_at_the_100th_percentile(blobnet, collection, tmp_path):
    """The same painting computed again (another thread count, another batch size) can come out a float32
    rounding lower than the index recorded: it is still the collection's best, not '>99.9'; a value truly below
    the best is not."""
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=4, progress=False))
    best = idx.stats("features.2", 0).max
    assert idx.percentile("features.2", 0, best) == 100.0
    assert idx.percentile("features.2", 0, float(np.float32(best) * np.float32(1 - 3e-7))) == 100.0
    assert idx.percentile("features.2", 0, best * (1 - 1e-3)) < 100.0
