"""Two files of a collection that are the same image (the same SHA-256): `index` reports them, and every page —
examples, similar paintings, the atlas, the web — shows the painting once."""

from __future__ import annotations

import csv
import shutil

import pytest
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.index import build_index, open_index
from imagemachines.index.examples import write_examples

from .conftest import blob_model, make_collection


@pytest.fixture
def twins(tmp_path):
    """The collection with two more files of its strongest red painting (one sorts before it, one after)."""
    col = make_collection(tmp_path / "images", n_red=4, n_tint=3, n_grey=1)
    strongest = col.red[0][0]
    shutil.copyfile(col.root / strongest, col.root / "red" / "a-copy.png")
    (col.root / "zz").mkdir()
    shutil.copyfile(col.root / strongest, col.root / "zz" / "again.png")
    idx = open_index(build_index(blob_model(), col.root, tmp_path / "idx", k=5, progress=False))
    return col, idx, ["red/a-copy.png", strongest, "zz/again.png"]


def test_the_index_records_the_copies_and_keeps_the_first_by_path(twins):
    _, idx, group = twins
    assert [[i.path for i in g] for g in idx.duplicates()] == [group]
    assert idx.manifest["n_duplicates"] == 2 and idx.manifest["duplicates"] == [group]
    ids = {i.path: i.id for i in idx.images()}
    assert idx.copies() == {ids[group[1]]: ids[group[0]], ids[group[2]]: ids[group[0]]}
    assert idx.same_image(ids[group[2]]) == {ids[p] for p in group}


def test_a_units_examples_show_each_painting_once(twins):
    col, idx, group = twins
    top = idx.examples("features.2", 0, k=3)
    paths = [idx.image(e.image_id).path for e in top]
    assert paths == [group[0], *[p for p, _ in col.red[1:3]]]  # the strongest red once, then the next reds
    assert [e.rank for e in top] == [1, 2, 3]
    assert len(idx.examples("features.2", 0, k=5)) == 3  # the index kept 5: the copies took two of the places
    assert len({idx.image(e.image_id).sha256 for e in idx.examples("features.2", 0)}) == len(
        idx.examples("features.2", 0))


def test_similar_paintings_never_offer_a_copy(twins):
    _, idx, group = twins
    pooled = idx.pooled("features.2")
    ids = {i.path: i.id for i in idx.images()}
    found = [i for i, _ in idx.similar("features.2", pooled[ids[group[1]]], k=20)]
    assert len([i for i in found if i in idx.same_image(ids[group[0]])]) == 1
    assert len(found) == idx.n_images - 2  # all but the two hidden copies
    alone = [i for i, _ in idx.similar("features.2", pooled[ids[group[2]]], k=20, exclude=ids[group[2]])]
    assert not set(alone) & idx.same_image(ids[group[0]])  # the painting itself, by any of its files: left out
    assert len(alone) == idx.n_images - 3


def test_the_examples_page_lists_the_painting_once(twins, tmp_path):
    _, idx, group = twins
    write_examples(idx, None, "features.2", 0, tmp_path / "ex", k=5, render=False, progress=False)
    rows = list(csv.DictReader((tmp_path / "ex" / "examples.csv").read_text().splitlines()))
    assert [r["path"] for r in rows].count(group[0]) == 1 and not {group[1], group[2]} & {r["path"] for r in rows}


def test_the_index_command_reports_the_copies(twins, tmp_path, monkeypatch):
    from imagemachines import models

    col, _, group = twins
    monkeypatch.setattr(models, "load_model", lambda *a, **k: blob_model())
    result = CliRunner().invoke(app, ["index", "blobnet", str(col.root), "--out", str(tmp_path / "idx"), "--k", "5"])
    assert result.exit_code == 0, result.output
    assert f"same image: {' = '.join(group)} (shown once, as {group[0]})" in " ".join(result.output.split())
    assert "2 copies of another file, each painting shown once" in " ".join(result.output.split())
