"""Where a unit's value on a painting is taken (the index's ranking) and the border counts, by hand and end to end
on ``FrameNet``, a planted network whose first unit answers the zero padding at the picture's edge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from imagemachines.errors import UserError
from imagemachines.index import build_index, open_index
from imagemachines.index.maps import activation_maps, peak_cell
from imagemachines.index.passes import summarise
from imagemachines.index.peaks import (
    border_chance,
    border_mask,
    check_ranking,
    network_input,
    painting_cells,
    peaks,
    reflect_pad,
)
from imagemachines.models import LoadedModel

SIDE = 32


def test_interior_takes_the_value_away_from_the_border_and_still_reports_the_border_peak():
    a = torch.zeros(1, 2, 5, 6)
    a[0, 0, 0, 0], a[0, 0, 2, 3] = 9.0, 4.0  # unit 0: strongest at a corner, second inside
    a[0, 1, 1, 4], a[0, 1, 4, 2] = 3.0, 1.0  # unit 1: strongest inside
    full_v, full_cell, full_edge, peak, inner = peaks(a, "full")
    assert full_v.tolist() == [[9.0, 3.0]] and full_cell.tolist() == [[0, 1 * 6 + 4]]
    v, cell, edge, peak_i, inner_i = peaks(a, "interior")
    assert v.tolist() == [[4.0, 3.0]] and cell.tolist() == [[2 * 6 + 3, 1 * 6 + 4]]  # cells of the whole map
    assert edge.tolist() == full_edge.tolist() == [[True, False]]  # about the maximum over all cells
    assert peak.tolist() == peak_i.tolist() == [[9.0, 3.0]] and inner.tolist() == inner_i.tolist() == [[4.0, 3.0]]
    assert peaks(a, "reflect").cell.tolist() == full_cell.tolist()  # reflect ranks every cell it is given


@pytest.mark.parametrize("shape", [(2, 5), (5, 2), (1, 1)])
def test_a_map_narrower_than_three_cells_has_no_border_and_no_interior(shape):
    a = torch.arange(float(np.prod(shape))).view(1, 1, *shape)
    for ranking in ("interior", "full"):
        v, cell, edge, peak, inner = peaks(a, ranking)
        assert v.item() == peak.item() == inner.item() == a.max().item() and cell.item() == a.numel() - 1
        assert not edge.item()
    assert border_chance(*shape) == 0.0 and not border_mask(*shape).any()


def test_vectors_are_their_own_values_in_cell_zero():
    vec = torch.tensor([[1.0, -2.0]])
    for ranking in ("interior", "reflect", "full"):
        v, cell, edge, peak, inner = peaks(vec, ranking)
        assert v.tolist() == peak.tolist() == inner.tolist() == vec.tolist() and cell.tolist() == [[0, 0]]
        assert not edge.any()


def test_border_share_of_a_map():
    assert border_chance(7, 7) == pytest.approx(24 / 49)  # MobileNetV2's last blocks: half the map is border
    assert border_chance(14, 14) == pytest.approx(52 / 196)
    assert border_mask(3, 4).tolist() == [[True] * 4, [True, False, False, True], [True] * 4]


def test_reflect_mirrors_the_painting_outward_and_crops_its_own_cells_back():
    x = torch.arange(2 * 3 * 7 * 7, dtype=torch.float32).view(2, 3, 7, 7)
    assert network_input(x, "interior") is x and network_input(x, "full") is x
    pad = reflect_pad(7)
    assert pad == 1 and reflect_pad(224) == 32 and reflect_pad(299) == 43
    padded = network_input(x, "reflect")
    assert padded.shape == (2, 3, 9, 9)
    assert torch.equal(padded[:, :, 1:-1, 1:-1], x)  # the painting in the middle
    assert torch.equal(padded[:, :, 0, 1:-1], x[:, :, 1])  # mirrored (the edge row not repeated)
    maps = torch.arange(2 * 4 * 9 * 9, dtype=torch.float32).view(2, 4, 9, 9)
    assert torch.equal(painting_cells(maps, "reflect", (7, 7)), maps[:, :, 1:8, 1:8])
    assert torch.equal(painting_cells(maps, "reflect", (5, 3)), maps[:, :, 2:7, 3:6])
    assert painting_cells(maps, "interior", (7, 7)) is maps
    vec = torch.ones(2, 4)
    assert painting_cells(vec, "reflect", (1, 1)) is vec


def test_summarise_ranks_by_the_interior_of_the_cells_that_cover_the_painting():
    a = torch.zeros(1, 1, 7, 7)
    a[0, 0, 0, 3] = 5.0  # on the padded map's edge: outside the painting
    a[0, 0, 1, 1] = 3.0  # the painting's corner cell
    a[0, 0, 3, 3] = 2.0  # inside the painting
    ((v, cell, edge, peak, inner), _mean), = summarise({"l": a}, ["l"], "reflect", {"l": (5, 5)}).values()
    assert v.item() == 3.0 and cell.item() == 0 and edge.item()  # full maximum of the painting: its corner
    assert (peak.item(), inner.item()) == (3.0, 2.0)
    ((v, cell, edge, peak, inner), mean), = summarise({"l": a}, ["l"], "interior", {"l": (7, 7)}).values()
    assert v.item() == 3.0 and cell.item() == 8 and edge.item()  # (1, 1) of the 7×7 map; the 5 is on its edge
    assert (peak.item(), inner.item()) == (5.0, 3.0)
    assert mean.item() == pytest.approx(10 / 49)  # the pooled mean is over every cell


def test_unknown_rankings_are_refused():
    with pytest.raises(UserError, match="Unknown ranking 'edges': use one of interior, reflect, full"):
        check_ranking("edges")


# -- end to end: a unit that answers the zero padding -----------------------------------------------------------
class FrameNet(nn.Module):
    """``features.0``: a 3×3 mean of the three channels, zero-padded: unit 0 = darkness (minus the mean), unit 1 =
    brightness. On a bright picture the darkness unit is highest where the window holds padding: at the corners."""

    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        with torch.no_grad():
            conv.weight[0].fill_(-1 / 27)
            conv.weight[1].fill_(1 / 27)
        self.features = nn.Sequential(conv)
        self.pool = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.pool(self.features(x))


def frame_model() -> LoadedModel:
    return LoadedModel.wrap("framenet", FrameNet(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=SIDE,
                            weights_id="framenet-v1", class_names=["dark", "bright"], source="test")


SPOTS = [((8, 20), 120), ((22, 9), 140), ((15, 15), 160), ((24, 24), 180)]  # (centre x, y), grey of the spot


@pytest.fixture
def frames(tmp_path):
    """Bright pictures (grey 204), each with a darker 3×3 spot inside: darkest spot first."""
    root = tmp_path / "images"
    root.mkdir()
    for i, ((x, y), grey) in enumerate(SPOTS):
        img = Image.new("RGB", (SIDE, SIDE), (204, 204, 204))
        ImageDraw.Draw(img).rectangle([x - 1, y - 1, x + 1, y + 1], fill=(grey,) * 3)
        img.save(root / f"spot-{i}.png")
    return root


@pytest.fixture(params=["full", "interior", "reflect"])
def framed(request, frames, tmp_path):
    model = frame_model()
    idx = open_index(build_index(model, frames, tmp_path / request.param, layers=["features.0"], k=4,
                                 ranking=request.param, progress=False))
    return request.param, model, idx


def test_each_ranking_finds_the_dark_spots_or_the_padding_and_counts_border_peaks(framed):
    ranking, model, idx = framed
    assert idx.ranking == ranking and idx.note is None
    assert json.loads((idx.path / "index.json").read_text())["ranking"] == ranking
    dark = idx.examples("features.0", 0)
    border = idx.border("features.0", 0)
    assert border.count == 4 and border.chance == pytest.approx(border_chance(SIDE, SIDE))
    if ranking == "full":  # the padding wins: every painting peaks in the corner (0, 0)
        assert {e.cell for e in dark} == {(0, 0)} and all(e.on_border for e in dark)
    else:  # the darkest spot first, found where it is
        assert [idx.image(e.image_id).path for e in dark] == [f"spot-{i}.png" for i in range(4)]
        assert [e.cell for e in dark] == [(y, x) for (x, y), _ in SPOTS] and not any(e.on_border for e in dark)
    # the maximum over all the painting's cells: at the padded corner, except when the padding is mirrored paint
    assert border.paintings == (0 if ranking == "reflect" else 4)
    assert border.flagged == (ranking != "reflect") and border.share == border.paintings / 4
    assert idx.border_units("features.0") == ([] if ranking == "reflect" else [0])
    assert border.inner_high == pytest.approx(-SPOTS[0][1] / 255, abs=1e-5)  # the darkest spot's mean, negated
    if ranking == "reflect":
        assert border.edge_high is None
    else:  # the corner's window holds 4 of 9 painted pixels: -(4/9)·0.8, the least negative border peak
        assert border.edge_high == pytest.approx(-4 / 9 * 204 / 255, abs=1e-5) and border.strength is None
    bright = idx.border("features.0", 1)
    assert bright.paintings == 0 and not bright.flagged and bright.edge_high is None
    assert bright.inner_high == pytest.approx(204 / 255, abs=1e-5)
    # the activation maps of the pages are the index's own: their peak is the recorded cell and value
    for e in dark:
        amap = activation_maps(model, [Image.open(idx.image_file(e.image_id))], "features.0", [0], ranking=ranking)
        assert amap.shape == (1, 1, SIDE, SIDE)
        assert peak_cell(amap[0, 0], ranking) == e.cell
        assert float(amap[0, 0][e.cell]) == pytest.approx(e.value, abs=1e-5)


def test_a_maximum_also_reached_inside_is_not_a_border_peak():
    a = torch.zeros(1, 3, 5, 5)
    a[0, 0] = 6.0  # saturated everywhere: the first inner cell
    a[0, 1, 0, 0] = a[0, 1, 1, 3] = a[0, 1, 4, 4] = 2.0  # corner, inner cell, corner: the inner cell
    a[0, 2, 0, 2] = a[0, 2, 4, 0] = 1.0  # two border cells: the first, on the border
    for ranking in ("full", "reflect", "interior"):
        v, cell, edge, peak, inner = peaks(a, ranking)
        assert v.tolist() == [[6.0, 2.0, 0.0 if ranking == "interior" else 1.0]]
        assert peak.tolist() == [[6.0, 2.0, 1.0]] and inner.tolist() == [[6.0, 2.0, 0.0]]
        assert cell.tolist() == [[6, 8, 6 if ranking == "interior" else 2]], ranking  # interior: zeros, a tie
        assert edge.tolist() == [[False, False, True]]
    assert peak_cell(a[0, 1].numpy()) == (1, 3)


@pytest.mark.parametrize(("paintings", "chance", "flagged"), [
    (80, 24 / 49, True), (70, 24 / 49, False),  # a 7×7 map: at least 1.5 × 49 % = 73.5 %
    (50, 52 / 196, True), (49, 52 / 196, False),  # a 14×14 map: at least half the paintings
    (100, 0.0, False),  # no border at all
])
def test_a_border_unit_peaks_on_the_border_for_half_the_paintings_and_half_again_as_often_as_chance(
        paintings, chance, flagged):
    from imagemachines.index.records import BorderStats

    stats = BorderStats(paintings, 100, chance)
    assert stats.share == paintings / 100 and stats.flagged is flagged and stats.by_share is flagged
    assert stats.as_dict() == {"paintings": paintings, "count": 100, "chance": chance, "edge_high": None,
                               "inner_high": None, "share": paintings / 100, "strength": None, "flagged": flagged,
                               "text": stats.text()}
    assert BorderStats(0, 0, 0.5).share == 0.0
    assert BorderStats(64, 100, 24 / 49).text() == ("peaks on the border in 64 % of 100 paintings "
                                                   "(border: 49 % of the map)")


@pytest.mark.parametrize(("edge_high", "inner_high", "strength", "flagged"), [
    (1.95, 0.718, 1.95 / 0.718, True),  # features.14:40: its top paintings are all corner peaks
    (1.25, 1.0, 1.25, True), (1.2, 1.0, 1.2, False),  # at least 1.25 times
    (0.5, -0.1, float("inf"), True),  # only the border is positive
    (-0.2, -0.5, None, False), (None, 1.0, None, False), (2.0, None, None, False),  # nothing to compare
])
def test_a_border_unit_is_also_one_whose_strongest_responses_are_border_peaks(edge_high, inner_high, strength,
                                                                               flagged):
    from imagemachines.index.records import BorderStats

    stats = BorderStats(52, 100, 24 / 49, edge_high, inner_high)  # 52 %: not flagged by the share
    assert not stats.by_share and stats.flagged is flagged and stats.strength == pytest.approx(strength)
    assert BorderStats(52, 100, 0.0, edge_high, inner_high).flagged is False  # a map without a border
    if flagged and strength != float("inf"):
        assert stats.text().endswith(f"; its strongest border peak ({edge_high:.3g}) is {strength:.1f}× its "
                                     f"strongest value inside ({inner_high:.3g})")
    elif not flagged:
        assert "strongest" not in stats.text()


def test_an_index_made_before_rankings_opens_with_a_note_and_is_rebuilt_to_update(frames, tmp_path):
    """What an index of an older imagemachines looks like: no ranking in the manifest or the build settings, no
    border counts in the layer files. It still answers; updating it needs --rebuild."""
    from imagemachines.index.query import LEGACY_NOTE
    from imagemachines.index.store import layer_file, load_tensors, save_tensors

    from .conftest import as_written_before

    out = build_index(frame_model(), frames, tmp_path / "old", layers=["features.0"], k=2, ranking="full",
                      progress=False)
    as_written_before(out, "ranking", "border_chance")
    tensors = load_tensors(layer_file(out, "features.0"))
    del tensors["border"]
    save_tensors(layer_file(out, "features.0"), tensors)

    old = open_index(out)
    assert old.ranking == "full" and old.note == LEGACY_NOTE and "--rebuild" in old.note
    assert old.border("features.0", 0) is None and old.border_units("features.0") == []
    assert old.examples("features.0", 0)[0].cell == (0, 0)  # still answers
    for ranking in ("full", "interior"):
        with pytest.raises(UserError, match=rf"ranking: 'full \(no border counts\)' → '{ranking}'.*--rebuild"):
            build_index(frame_model(), frames, out, layers=["features.0"], k=2, ranking=ranking, progress=False)
    rebuilt = open_index(build_index(frame_model(), frames, out, layers=["features.0"], k=2, progress=False,
                                     rebuild=True))
    assert rebuilt.note is None and rebuilt.border("features.0", 0).flagged
