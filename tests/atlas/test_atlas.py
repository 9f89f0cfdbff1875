"""The atlas: pages at stable URLs, a manifest, recipes inside the images, resume after a kill, no mixing."""

from __future__ import annotations

import json

import pytest

from imagemachines.atlas import AtlasSettings, build_atlas
from imagemachines.atlas import build as build_module
from imagemachines.atlas.images import read_image_recipe
from imagemachines.atlas.links import atlas_page, serve_link
from imagemachines.atlas.plan import plan_jobs, shard
from imagemachines.atlas.state import AtlasMismatch
from imagemachines.errors import UserError
from tests.conftest import tiny_loaded_model

TINY = dict(layers=["features.1", "features.3"], channels="0-2", size=32, steps=2)


def settings(**kw) -> AtlasSettings:
    return AtlasSettings(**{**TINY, **kw})


@pytest.fixture
def counted(monkeypatch):
    """Counts the units that go through render()."""
    from imagemachines.vis import engine

    calls: list[list[str]] = []
    real = engine.render

    def spy(model, units, **kw):
        calls.append([str(u) for u in units])
        return real(model, units, **kw)

    monkeypatch.setattr(engine, "render", spy)
    return calls


def test_site_pages_manifest_and_embedded_recipes(tmp_path):
    model = tiny_loaded_model()
    result = build_atlas(model, tmp_path, settings(methods=["lucid", "maco"], seeds=[0, 1]), progress=False)
    assert result.index_html == tmp_path / "index.html" and result.rendered == 2 * 3 * 2 * 2
    root = tmp_path / "tiny"
    for page in ("index.html", "features.1/index.html", "features.3/index.html", "features.1/0.html",
                 "features.3/2.html"):
        assert (root / page).is_file(), page
    assert not (root / "features.1" / "3.html").exists()
    manifest = json.loads((root / "atlas.json").read_text())
    assert manifest["weights_id"] == "tiny-seed0"
    assert [(u["layer"], u["channel"]) for u in manifest["units"]] == [
        (layer, c) for layer in ("features.1", "features.3") for c in range(3)]
    unit = manifest["units"][4]
    assert [(im["method"], im["seed"]) for im in unit["images"]] == [("lucid", 0), ("lucid", 1), ("maco", 0),
                                                                     ("maco", 1)]
    for im in unit["images"]:
        embedded = read_image_recipe(root / im["file"])
        assert embedded == im["recipe"] and embedded["unit"] == "features.3:1"
        assert embedded["activation"] == im["activation"]
    unit_page = (root / "features.3" / "1.html").read_text()
    assert 'href="0.html"' in unit_page and 'href="2.html"' in unit_page
    assert ("#model=tiny&amp;layer=features.3&amp;unit=1&amp;method=lucid&amp;size=32&amp;steps=2&amp;seed=0"
            in unit_page)


def test_png_images_carry_the_recipe_too(tmp_path):
    build_atlas(tiny_loaded_model(), tmp_path, settings(layers=["features.3"], channels="5", image_format="png"),
                progress=False)
    assert read_image_recipe(tmp_path / "tiny/features.3/img/5-lucid-s0.png")["channel"] == 5


def test_a_killed_run_resumes_without_redoing_finished_units(tmp_path, monkeypatch, counted):
    model = tiny_loaded_model()
    real_save = build_module.save_image
    saved = []

    def dies_on_the_fourth(image, recipe, path):
        if len(saved) == 3:
            raise KeyboardInterrupt  # the run is killed while writing the fourth image
        saved.append(path)
        return real_save(image, recipe, path)

    monkeypatch.setattr(build_module, "save_image", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        build_atlas(model, tmp_path, settings(batch=2), progress=False)
    monkeypatch.setattr(build_module, "save_image", real_save)
    before = {p: p.stat().st_mtime_ns for p in saved}
    counted.clear()
    result = build_atlas(model, tmp_path, settings(batch=2), progress=False)
    assert (result.rendered, result.skipped) == (3, 3)
    assert sorted(u for call in counted for u in call) == ["features.3:0", "features.3:1", "features.3:2"]
    assert {p: p.stat().st_mtime_ns for p in saved} == before
    assert not list(tmp_path.rglob("*.tmp"))
    counted.clear()
    assert build_atlas(model, tmp_path, settings(batch=2, force=True), progress=False).rendered == 6
    assert len([u for call in counted for u in call]) == 6


def test_other_weights_or_settings_are_refused_not_mixed(tmp_path):
    build_atlas(tiny_loaded_model(), tmp_path, settings(layers=["features.3"], channels="0"), progress=False)
    with pytest.raises(AtlasMismatch, match="steps"):
        build_atlas(tiny_loaded_model(), tmp_path, settings(layers=["features.3"], channels="0", steps=3),
                    progress=False)
    with pytest.raises(AtlasMismatch, match="weights_id"):
        build_atlas(tiny_loaded_model(seed=1), tmp_path, settings(layers=["features.3"], channels="0"),
                    progress=False)
    # more units, another method: fine, they join the same atlas
    build_atlas(tiny_loaded_model(), tmp_path, settings(layers=["features.3"], channels="0-1",
                                                        methods=["lucid", "classic"]), progress=False)
    stored = json.loads((tmp_path / "tiny" / "settings.json").read_text())
    assert set(stored["recipes"]) == {"lucid", "classic"}


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="webp or png"):
        build_atlas(tiny_loaded_model(), tmp_path, settings(image_format="gif"), progress=False)
    with pytest.raises(UserError, match="none of them"):
        build_atlas(tiny_loaded_model(), tmp_path, settings(channels="100-200"), progress=False)


def test_shards_cover_every_batch_once():
    jobs = plan_jobs({"a": range(10), "b": range(3)}, ["lucid", "maco"], [0, 1], batch=4)
    assert len(jobs) == (3 + 1) * 2 * 2 and all(len(j.channels) <= 4 for j in jobs)
    for world in (1, 2, 3, 5):
        parts = [shard(jobs, r, world) for r in range(world)]
        assert sorted((j for p in parts for j in p), key=jobs.index) == jobs


def test_links_between_atlas_and_interface_round_trip():
    link = serve_link("http://127.0.0.1:8000/", "mobilenet_v2", "features.14", 40, method="maco", size=224,
                      steps=256, seed=3)
    assert link.startswith("http://127.0.0.1:8000/#model=mobilenet_v2&layer=features.14&unit=40&method=maco")
    assert atlas_page(link) == "mobilenet_v2/features.14/40.html"
    # the interface's own form (neuron units, other key order) maps too
    link = "http://h/#layer=Mixed_6c&model=inception_v3&unit=66@3,4&seed=0"
    assert atlas_page(link) == "inception_v3/Mixed_6c/66.html"
    with pytest.raises(ValueError):
        atlas_page("http://h/#model=x")
