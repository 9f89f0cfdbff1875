"""Concept discovery end to end on the planted colour network: the concepts, their ranks, maps and crops are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imagemachines.concepts import ActivationCache, discover
from imagemachines.concepts.activations import collect
from imagemachines.concepts.crops import CropGrid
from tests.concepts.conftest import RADIUS, H, W, colour_model


def _study(painted, cache_dir, **options):
    options = {"concepts": 2, "render": False, "progress": False, **options}
    return discover(colour_model(), painted.root, options.pop("classes", "all"), cache=cache_dir, **options)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from tests.concepts.conftest import make_paintings

    tmp = tmp_path_factory.mktemp("study")
    painted = make_paintings(tmp / "paintings")
    return painted, _study(painted, tmp / "cache")


def test_each_class_has_its_colour_first_and_green_second(study):
    _, s = study
    channel = {"red": 0, "blue": 2}
    for name, c in s.classes.items():
        own, green = c.concepts
        assert int(np.argmax(c.W[0])) == channel[name] and int(np.argmax(c.W[1])) == 1
        assert own.sobol > 0.95 and own.ablation > 0.5
        assert green.sobol == 0.0 and green.ablation == 0.0  # greenness never reaches the class logit
        assert c.r2 > 0.999 and c.curves.logit_share == pytest.approx(1.0, abs=1e-3)
        assert c.stability.mean > 0.999


def _cell_of(x: float, y: float, h: int = 8, w: int = 8) -> tuple[float, float]:
    """The (row, col) a painting's pixel falls in (paintings are squashed to the input square)."""
    return y / H * h, x / W * w


def test_concept_maps_peak_where_the_discs_are(study):
    painted, s = study
    for name, c in s.classes.items():
        for j, colour in ((0, name), (1, "green")):
            for i, path in enumerate(c.paths):
                heat = c.cell_coefficients[i, :, :, j]
                r, col = np.unravel_index(int(heat.argmax()), heat.shape)
                want_r, want_c = _cell_of(*painted.centres[path][colour])
                assert abs(r + 0.5 - want_r) <= 1.5 and abs(col + 0.5 - want_c) <= 1.5, (path, colour, (r, col))
                if i == c.concepts[j].paintings[0].image:  # the page's peak cell is the map's maximum
                    assert c.concepts[j].paintings[0].cell == (int(r), int(col))
                other = "green" if colour != "green" else name
                far_r, far_c = _cell_of(*painted.centres[path][other])
                assert float(heat[int(far_r), int(far_c)]) < 0.05 * float(heat.max())


def test_best_crops_hold_their_concepts_disc(study):
    painted, s = study
    for name, c in s.classes.items():
        for j, colour in ((0, name), (1, "green")):
            crops = c.concepts[j].crops
            assert len({cr.path for cr in crops}) == len(crops) == len(c.paths)  # one per painting
            for cr in crops:
                x, y = painted.centres[cr.path][colour]
                x0, y0, x1, y1 = cr.box
                assert x0 - RADIUS < x < x1 + RADIUS and y0 - RADIUS < y < y1 + RADIUS, (cr, colour)


def test_the_green_concepts_of_both_classes_are_shared(study):
    _, s = study
    assert [(p.a, p.first, p.b, p.second) for p in s.shared] == [("red", 1, "blue", 1)]
    assert s.shared[0].similarity > 0.999


def test_removing_the_important_concept_beats_random_and_units(study):
    _, s = study
    for c in s.classes.values():
        d = c.curves.deletion
        assert d["concepts"][1] < d["random"][1] - 0.05
        assert d["concepts"][1] <= d["units"][1] + 1e-6


def test_the_same_seed_gives_the_same_study_and_the_cache_serves_a_second_run(painted, cache_dir):
    first = _study(painted, cache_dir)
    again = _study(painted, cache_dir)
    assert all(t["computed_images"] == 0 for t in again.timings.values() if isinstance(t, dict))
    assert all(t["computed_images"] > 0 for t in first.timings.values() if isinstance(t, dict))
    a, b = first.as_dict(), again.as_dict()
    a.pop("timings"), b.pop("timings")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    other = _study(painted, cache_dir, concepts=1, seed=3)  # another K and seed: still no network pass
    assert all(t["computed_images"] == 0 for t in other.timings.values() if isinstance(t, dict))
    assert other["red"].k == 1


def test_cached_numbers_are_the_computed_ones(painted, cache_dir):
    model = colour_model()
    cache = ActivationCache(cache_dir)
    paths = painted.of("red")
    fresh = collect(model, painted.root, paths, "features.2", cache, grid=CropGrid(), progress=False)
    read = collect(model, painted.root, paths, "features.2", cache, grid=CropGrid(), progress=False)
    assert fresh.computed == len(paths) and read.computed == 0
    for name in ("maps", "crops", "crop_image", "crop_box"):
        assert getattr(fresh, name).equal(getattr(read, name)), name
    assert fresh.crops.shape == (len(paths) * 16, 3) and fresh.maps.shape == (len(paths), 3, 8, 8)


def test_progress_rises_to_one_and_a_raising_callback_stops_the_study(painted, cache_dir):
    seen: list[tuple[str, float]] = []
    _study(painted, cache_dir, render=True, render_size=32, render_steps=3,
           on_progress=lambda w, f: seen.append((w, f)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] < 0.1
    stages = {w.split(":")[-1].split("(")[0].strip() for w, _ in seen}
    assert {"crops", "factorising", "importance", "faithfulness", "rendering concepts"} <= stages

    class Stop(Exception):
        pass

    def stop_in_renders(what: str, _fraction: float) -> None:
        if what == "rendering concepts" and _fraction > 0.95:  # a step of the render itself, not its announcement
            raise Stop

    with pytest.raises(Stop):
        _study(painted, cache_dir, render=True, render_size=32, render_steps=3, on_progress=stop_in_renders)
