"""Similarity modes in the index: stored in the same pass, equal to the pure functions, searched, upgraded."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from imagemachines.errors import UnitOutOfRange, UserError
from imagemachines.index import build_index, open_index, similarity_vectors
from imagemachines.index.passes import preprocess
from imagemachines.index.similarity_store import painting_vectors, projections
from imagemachines.index.similarity_vectors import COVARIANCE, MODES, mode_finish, raw_vectors
from imagemachines.index.store import load_tensors, save_tensors

from .conftest import as_written_before, assert_same_index, red_image


def _build(model, root, out, **kw):
    return open_index(build_index(model, root, out, k=4, chunk_size=3, progress=False, **kw))


@pytest.fixture
def index(blobnet, collection, tmp_path):
    return _build(blobnet, collection.root, tmp_path / "idx")


def test_the_manifest_names_each_modes_layers(index):
    spec = index.manifest["similarity"]
    assert spec["content"] == "features.2"  # the deepest block with a map
    assert spec["style"] == ["features.0", "features.1"]  # every block of the 64 px stage
    assert spec["composition"] == "features.1" and spec["statistic"] == "log-covariance"  # that stage's end


def test_stored_rows_are_the_pure_functions_of_each_paintings_activations(blobnet, index):
    sim = index.similarity()
    spec = sim.spec
    images = [Image.open(index.image_file(i)).convert("RGB") for i in range(index.n_images)]
    x = torch.stack([preprocess(blobnet)(im) for im in images])
    with torch.inference_mode():
        out = blobnet.tap(spec.layers)(x)
    raw = {k: v.numpy() for k, v in raw_vectors(out, spec, projections(spec)).items()}
    raw["content"] = out[spec.content].flatten(2).mean(2).numpy()
    raw = {k: v.astype(np.float16) for k, v in raw.items()}  # the chunks keep float16
    for mode in MODES:
        r = raw["grid" if mode == "composition" else mode]
        want = mode_finish(mode, r, spec).apply(r)
        got = np.asarray(sim.rows(mode), np.float32)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 2e-3, mode
        norms = np.linalg.norm(got, axis=1)
        assert np.all((np.abs(norms - 1) < 2e-3) | (norms < 1e-3)), mode  # unit rows (a painting at the mean: 0)
    assert sim.finish("style").whiten is not None and sim.finish("composition").whiten is None  # as stored
    # a new painting's vectors, computed alone, give the stored rows of the same painting
    for image_id in (0, 7):
        q = sim.query_rows(painting_vectors(blobnet, images[image_id], spec))
        stored = sim.stored_rows(image_id)
        for mode in MODES:
            assert np.abs(q[mode] - stored[mode]).max() < 3e-3, mode


def test_a_painting_is_not_its_own_neighbour_and_its_copy_is_set_apart(blobnet, collection, tmp_path):
    rel, centre = collection.red[2]
    copy = red_image(100 + 15 * 2, centre)
    copy.putpixel((0, 0), (120, 128, 128))  # another photograph of it: not the same file
    copy.save(collection.root / "red" / "copy.png")
    idx = _build(blobnet, collection.root, tmp_path / "idx")
    ids = {info.path: info.id for info in idx.images()}
    sim = idx.similarity()
    found = sim.search(sim.stored_rows(ids[rel]), "composition", k=5, exclude=[ids[rel]])
    listed = [n.image_id for n in found.neighbours] + [c for n in found.neighbours for c in n.copies]
    assert ids[rel] not in listed and ids["red/copy.png"] not in listed
    # (a blob this net sees at nearly the same place counts as the same arrangement too: BlobNet has 2 units)
    assert ids["red/copy.png"] in found.same_painting and ids[rel] not in found.same_painting
    assert ids["red/copy.png"] in sim.duplicates_of(ids[rel]) and ids[rel] not in sim.duplicates_of(ids[rel])
    assert set(found.same_painting) == set(sim.duplicates_of(ids[rel]))
    assert len(found.neighbours) == 5


def test_every_neighbour_says_why(index):
    sim = index.similarity()
    q = sim.stored_rows(0)
    for mode in MODES:
        found = sim.search(q, mode, k=3, exclude=[0])
        for n in found.neighbours:
            assert n.scores[mode] == pytest.approx(n.score, abs=1e-6)
            for r in n.reasons:
                assert r.mode == mode and r.share > 0
                if mode == "style":
                    assert r.layer in sim.spec.style and r.channel is None
                else:
                    assert r.layer in (sim.spec.content, sim.spec.composition) and r.channel is not None
    mix = sim.search(q, "content:0.25,style:0.75", k=3, exclude=[0])
    single = {m: {n.image_id: n.score for n in sim.search(q, m, k=index.n_images, exclude=[0]).neighbours}
              for m in ("content", "style")}
    for n in mix.neighbours:
        assert n.score == pytest.approx(0.25 * single["content"][n.image_id] + 0.75 * single["style"][n.image_id],
                                        abs=1e-5)


def test_bad_search_input_gets_a_clear_error(index):
    sim = index.similarity()
    q = sim.stored_rows(0)
    with pytest.raises(UserError, match="Unknown similarity mode"):
        sim.search(q, "colour")
    with pytest.raises(UserError, match="whole number"):
        sim.search(q, "style", k=-1)
    with pytest.raises(UnitOutOfRange, match="out of range"):
        sim.stored_rows(index.n_images)
    with pytest.raises(UserError, match="does not fit"):
        sim.query_rows({"content": np.zeros(5), "style": np.zeros(3), "grid": np.zeros(32)})
    assert sim.search(q, "style", k=0).neighbours == []


def test_an_index_made_before_the_modes_says_how_to_add_them(blobnet, collection, tmp_path):
    out = tmp_path / "idx"
    _build(blobnet, collection.root, out)
    as_written_before(out, "similarity")  # what an index of the previous version holds
    for chunk in (out / "chunks").glob("*.safetensors"):  # nor do its chunks hold raw similarity vectors
        tensors = load_tensors(chunk)
        save_tensors(chunk, {k: v for k, v in tensors.items() if not k.startswith("similar/")})
    shutil.rmtree(out / "similar")
    with pytest.raises(UserError, match="Run the same `imagemachines index"):
        open_index(out).similarity()
    upgraded = _build(blobnet, collection.root, out)  # the same command again
    assert "similarity" in upgraded.manifest
    assert_same_index(upgraded, _build(blobnet, collection.root, tmp_path / "fresh"))


def test_an_index_with_plain_style_covariances_still_answers_and_the_same_command_upgrades_it(
        blobnet, collection, tmp_path, monkeypatch, capsys):
    out = tmp_path / "idx"
    made = similarity_vectors.model_spec

    def plain(model):  # what the previous version stored: plain covariances of 32 channels, no "statistic"
        from dataclasses import replace

        return replace(made(model), statistic=COVARIANCE, keep=32)

    monkeypatch.setattr(similarity_vectors, "model_spec", plain)
    old = _build(blobnet, collection.root, out)
    monkeypatch.undo()
    as_written_before(out, ("similarity", "statistic"))
    old = open_index(out)
    sim = old.similarity()
    assert sim.spec.statistic == COVARIANCE  # read as what it is, so a new painting is compared alike
    image = Image.open(old.image_file(3)).convert("RGB")
    q = sim.query_rows(painting_vectors(blobnet, image, sim.spec))
    assert np.abs(q["style"] - sim.stored_rows(3)["style"]).max() < 3e-3
    before = np.asarray(sim.rows("style"), np.float32).copy()
    upgraded = _build(blobnet, collection.root, out)  # the same command again: one pass, no --rebuild needed
    assert "every image is read again" in capsys.readouterr().err
    assert upgraded.similarity().spec.statistic == "log-covariance"
    assert not np.allclose(np.asarray(upgraded.similarity().rows("style"), np.float32), before, atol=1e-2)
    assert_same_index(upgraded, _build(blobnet, collection.root, tmp_path / "fresh"))


def test_no_pooled_means_no_modes(blobnet, collection, tmp_path):
    idx = _build(blobnet, collection.root, tmp_path / "idx", pooled=False)
    assert "similarity" not in idx.manifest and not (tmp_path / "idx" / "similar").exists()
    with pytest.raises(UserError, match="--no-pooled"):
        idx.similarity()


def test_the_basis_names_the_layers_each_mode_reads(index):
    from dataclasses import replace

    from imagemachines.index.similarity_store import SimilarityStore

    sim = index.similarity()
    assert sim.basis({"style": 1.0}) == "style at features.0, features.1"
    assert sim.basis({"content": 0.5, "composition": 0.5}) == \
        "0.5 × content at features.2 + 0.5 × composition at features.1 (4×4)"
    deep = replace(sim.spec, style=tuple(f"features.{i}" for i in range(14)), style_channels=(16,) * 14)
    assert SimilarityStore(index, deep).basis({"style": 1.0}) == "style at features.0 … features.13 (14 blocks)"
