"""`imagemachines map` / ``build_map`` on a generated collection in three families (tiny model): the layout
keeps the families apart and is reproducible, clusters are named by their metadata majority, new paintings
are placed beside their own family without moving the others, and every input error is a clear message.

UMAP compiles itself on first use (about half a minute on two busy cores), hence the ``slow`` mark and the
one index + map per module."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.collection_map import LayoutParams, build_map, open_map
from imagemachines.collection_map.layout import knn, neighbourhood_kept
from imagemachines.collection_map.store import load_map, map_dir
from imagemachines.errors import UserError
from tests.collection_map.families import index_families, make_families, write_family, write_labels

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    images, labels = make_families(root)
    index = index_families(root, images, labels)
    result = build_map(index, progress=False)
    return root, images, labels, index, result


def family_of(index, ids):
    return [index.image(int(i)).meta["label"] for i in ids]


def test_the_map_keeps_families_together_and_names_clusters_by_their_majority(families):
    _, _, _, index, result = families
    assert (result.name, result.n, result.fitted, result.placed) == ("features.3", 60, 60, 0)
    view = open_map(index)
    assert len(view) == 60 and view.missing == 0 and not view.stale
    labels = family_of(index, view.ids)
    near, _ = knn(view.xy, view.xy, 6)
    same = np.mean([[labels[j] == labels[i] for j in row[1:]] for i, row in enumerate(near)])
    assert same > 0.9                                   # a painting's map neighbours are of its family
    assert result.neighbourhood is not None and result.neighbourhood > 0.4
    named = {c["value"] for c in view.clusters}
    assert named <= {"red", "blue", "green"} and len(named) >= 2
    for c in view.clusters:
        members = view.ids[view.cluster == c["number"]]
        assert c["size"] == len(members)
        share = family_of(index, members).count(c["value"]) / len(members)
        assert c["facet"] == "label" and c["share"] == pytest.approx(share, abs=1e-3)
        assert c["units"] and all(u["d"] > 0 for u in c["units"])


def test_the_layout_is_reproducible_and_stored_without_pickles(families, tmp_path):
    _, _, _, index, result = families
    first = load_map(result.folder)
    copy = tmp_path / "copy"
    shutil.copytree(index.path, copy, ignore=shutil.ignore_patterns("maps"))
    from imagemachines.index import open_index

    again = build_map(open_index(copy), progress=False)
    assert np.array_equal(load_map(again.folder).xy, first.xy)
    assert sorted(p.name for p in result.folder.iterdir()) == ["layout.safetensors", "map.json"]
    meta = json.loads((result.folder / "map.json").read_text())
    assert meta["settings"]["seed"] == 0 and meta["source"]["layer"] == "features.3"
    assert first.xy.min() >= 0 and first.xy.max() <= 1


def test_new_paintings_are_placed_beside_their_family_and_the_rest_stays(families, tmp_path):
    root, images, labels, _, _ = families
    work = tmp_path / "grow"
    shutil.copytree(images, work / "images")
    with open(labels, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    from imagemachines.index import build_index, open_index
    from tests.conftest import tiny_loaded_model

    index = open_index(build_index(tiny_loaded_model(), work / "images", work / "index", k=4,
                                   metadata=write_labels(work, rows), progress=False))
    build_map(index, progress=False)
    before = open_map(index)
    where = {index.image(int(i)).path: xy for i, xy in zip(before.ids, before.xy, strict=True)}
    write_family(work / "images", "blue", range(100, 106), rows)      # six new blue paintings
    (work / "images" / "red" / "red-000.png").unlink()                 # one red painting removed
    index = open_index(build_index(tiny_loaded_model(), work / "images", work / "index", k=4,
                                   metadata=write_labels(work, rows), progress=False))
    assert open_map(index).missing == 6                                 # the map says what it lacks
    result = build_map(index, progress=False)
    assert (result.fitted, result.placed, result.kept, result.removed) == (0, 6, 59, 1)
    after = open_map(index)
    assert len(after) == 65 and after.missing == 0
    paths = [index.image(int(i)).path for i in after.ids]
    for p, xy in zip(paths, after.xy, strict=True):
        if p in where:
            assert np.array_equal(xy, where[p])                        # nothing known moved
    assert "red/red-000.png" not in paths
    new = [k for k, p in enumerate(paths) if "-10" in p]
    assert len(new) == 6 and all(after.placed[k] == 1 for k in new)
    old = [k for k, p in enumerate(paths) if p in where]
    near, _ = knn(after.xy[new], after.xy[old], 5)
    labels_old = family_of(index, after.ids[old])
    assert np.mean([[labels_old[j] == "blue" for j in row] for row in near]) > 0.8
    blue_clusters = {int(after.cluster[k]) for k, p in enumerate(paths) if p.startswith("blue/") and k not in new}
    assert all(int(after.cluster[k]) in blue_clusters | {-1} for k in new)
    again = build_map(index, progress=False)                          # nothing new: nothing changes
    assert (again.fitted, again.placed, again.removed) == (0, 0, 0)
    refit = build_map(index, refit=True, progress=False)
    assert refit.fitted == 65 and open_map(index).placed.sum() == 0


def test_other_settings_need_refit(families):
    _, _, _, index, _ = families
    with pytest.raises(UserError, match="other settings.*--refit"):
        build_map(index, params=LayoutParams(seed=3), progress=False)


def test_the_neighbourhood_score_is_one_for_a_copy_and_low_for_noise():
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, np.pi / 2, 300)                  # directions (the pooled space is compared by cosine)
    high = np.c_[np.cos(angle), np.sin(angle)] * rng.uniform(1, 5, (300, 1))
    line = np.c_[angle, np.zeros(300)]                       # the same order on a line
    assert neighbourhood_kept(high, line, 10, sample=None) == 1.0
    assert neighbourhood_kept(rng.random((300, 16)), line, 10, sample=None) < 0.15


def test_the_command_makes_the_map_and_its_page(families):
    _, _, _, index, _ = families
    result = runner.invoke(app, ["map", str(index.path), "--layer", "features.3"])
    assert result.exit_code == 0, result.output
    page = map_dir(index.path, "features.3") / "map.html"
    assert result.output.strip().splitlines()[-1] == str(page)
    text = page.read_text()
    assert 'id="map-data"' in text and "<script>" not in text           # data as JSON, no inline script
    assert (page.parent / "sheet-0.jpg").is_file() and (page.parent / "mapcanvas.js").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--layer", "features.9"], "no layer 'features.9'"),
    (["--layer", "features.3", "--layer", "nope"], "no layer 'nope'"),
    (["--clusters", "many"], "give 'auto'"),
    (["--clusters", "1"], "from 2 to 200"),
    (["--pca", "-1"], "out of range"),
    (["--neighbors", "1"], "out of range"),
    (["--min-dist", "2"], "out of range"),
])
def test_bad_options_are_clear_errors(families, args, message):
    _, _, _, index, _ = families
    result = runner.invoke(app, ["map", str(index.path), *args])
    assert result.exit_code != 0 and isinstance(result.exception, UserError), result.output
    assert message in str(result.exception)


def test_missing_and_unsuitable_indexes_are_clear_errors(tmp_path, families):
    root, images, labels, index, _ = families
    for target, message in ((tmp_path / "nowhere", "not an index folder"), (tmp_path, "holds no index")):
        result = runner.invoke(app, ["map", str(target)])
        assert isinstance(result.exception, UserError) and message in str(result.exception)
    from imagemachines.index import build_index, open_index
    from tests.conftest import tiny_loaded_model

    bare = open_index(build_index(tiny_loaded_model(), images, tmp_path / "bare", k=2, pooled=False, progress=False))
    with pytest.raises(UserError, match="--no-pooled"):
        build_map(bare, progress=False)
    two = tmp_path / "two" / "images"
    write_family(two, "red", range(2), [])
    with pytest.raises(UserError, match="at least 3"):
        build_map(open_index(build_index(tiny_loaded_model(), two, tmp_path / "two" / "index", progress=False)),
                  progress=False)
    damaged = map_dir(index.path, "features.3") / "layout.safetensors"
    saved = damaged.read_bytes()
    damaged.write_bytes(saved[:100])
    try:
        with pytest.raises(UserError, match="cannot be read.*--refit"):
            open_map(index)
    finally:
        damaged.write_bytes(saved)
    with pytest.raises(UserError, match="no map 'features.0'"):
        open_map(index, "features.0")


def test_a_map_by_a_similarity_mode_places_paintings_as_similar_compares_them(families):
    """--mode: the layout's vectors are the index's rows of that mode (a mix: joined so that their cosine is the
    weighted sum of the modes' cosines, the score `similar` ranks by); groups are still explained by units."""
    from imagemachines.collection_map.vectors import source_for

    _, _, _, index, _ = families
    store = index.similarity()
    style = build_map(index, mode="style", progress=False)
    assert style.name == "mode:style" and style.folder.name == "mode_style" and style.fitted == 60
    view = open_map(index, "mode:style")
    assert view.layer == "features.3" and view.meta["source"]["mode"] == "style"
    assert np.array_equal(np.asarray(source_for(index, mode="style").vectors(index)), np.asarray(store.rows("style")))
    labels = family_of(index, view.ids)
    near, _ = knn(view.xy, view.xy, 6)
    assert np.mean([[labels[j] == labels[i] for j in row[1:]] for i, row in enumerate(near)]) > 0.8
    assert view.clusters and all(c["units"] for c in view.clusters)          # named by units of features.3
    assert open_map(index).name == "features.3"                              # the default map stays the layer's
    mix = source_for(index, mode="content:0.25,composition:0.75")
    assert mix.name == "mode:content@0.25_composition@0.75" and mix.mode == "content:0.25,composition:0.75"
    v = np.asarray(mix.vectors(index), np.float64)
    rows = {m: np.asarray(store.rows(m), np.float64) for m in ("content", "composition")}
    expected = 0.25 * rows["content"][3] @ rows["content"][7] + 0.75 * rows["composition"][3] @ rows["composition"][7]
    assert v[3] @ v[7] == pytest.approx(expected, rel=1e-5)


def test_a_mode_map_from_earlier_similarity_rows_asks_for_refit(families, tmp_path):
    _, _, _, index, _ = families
    copy = tmp_path / "copy"
    shutil.copytree(index.path, copy, ignore=shutil.ignore_patterns("maps"))
    from imagemachines.collection_map.store import map_dir
    from imagemachines.index import open_index

    idx = open_index(copy)
    build_map(idx, mode="style", progress=False)
    build_map(idx, mode="content", progress=False)
    assert build_map(idx, mode="style", progress=False).fitted == 0  # the same rows: the map is kept
    for name in ("mode:style", "mode:content"):  # as the previous version stored them: no spec recorded
        meta_file = map_dir(copy, name) / "map.json"
        meta = json.loads(meta_file.read_text())
        del meta["source"]["similarity"]
        meta_file.write_text(json.dumps(meta))
    assert build_map(idx, mode="content", progress=False).fitted == 0  # content rows have not changed
    with pytest.raises(UserError, match="style statistics from before this version.*--refit"):
        build_map(idx, mode="style", progress=False)
    assert build_map(idx, mode="style", refit=True, progress=False).fitted == idx.n_images
    manifest = json.loads((copy / "index.json").read_text())
    manifest["similarity"]["keep"] = 8  # the index's rows made another way since
    (copy / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="keep 16 → 8.*--refit"):
        build_map(open_index(copy), mode="content", progress=False)


def test_bad_modes_are_clear_errors(families, tmp_path):
    _, _, _, index, _ = families
    result = runner.invoke(app, ["map", str(index.path), "--mode", "texture"])
    assert isinstance(result.exception, UserError) and "Unknown similarity mode 'texture'" in str(result.exception)
    result = runner.invoke(app, ["map", str(index.path), "--mode", "style", "--layer", "features.3",
                                 "--layer", "features.1"])
    assert isinstance(result.exception, UserError) and "at most one --layer" in str(result.exception)
    older = tmp_path / "older"
    shutil.copytree(index.path, older, ignore=shutil.ignore_patterns("maps"))
    manifest = json.loads((older / "index.json").read_text())
    del manifest["similarity"]
    (older / "index.json").write_text(json.dumps(manifest))
    from imagemachines.index import open_index

    with pytest.raises(UserError, match="made before similarity modes"):
        build_map(open_index(older), mode="style", progress=False)
