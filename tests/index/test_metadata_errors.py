"""Metadata joins (subset.csv found automatically, --metadata by a path column) and clear errors for bad input."""

from __future__ import annotations

import csv
import sqlite3

import pytest

from imagemachines.errors import UnitOutOfRange, UnknownLayer, UserError
from imagemachines.index import build_index, open_index
from imagemachines.index.store import MANIFEST

from .conftest import blob_model


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_subset_csv_and_metadata_csv_are_joined(blobnet, collection, tmp_path):
    # a WGA-like subset.csv one level above the image folder, paths relative to it
    _write_csv(collection.root.parent / "subset.csv", ["path", "split", "class", "AUTHOR", "TITLE", "URL", "sha256"],
               [[f"images/{p}", "train", "red", f"Painter {i}", f"Blob {i}", f"https://example.org/{i}.html", "ab"]
                for i, (p, _) in enumerate(collection.red)])
    # a labels.csv elsewhere: paths relative to the image folder, one by bare file name, one unknown
    labels = tmp_path / "meta" / "labels.csv"
    labels.parent.mkdir()
    _write_csv(labels, ["path", "label", "year"],
               [[collection.tints[0], "tint", "1500"], ["grey-03.png", "grey", "1600"], ["nope/x.png", "x", "1"]])
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=3, metadata=labels, progress=False))
    by_path = {i.path: i.meta for i in idx.images()}
    first_red = collection.red[-1][0]  # red-00, the weakest blob: the last row, Painter 5
    assert by_path[collection.red[0][0]] == {"split": "train", "class": "red", "AUTHOR": "Painter 0",
                                             "TITLE": "Blob 0", "URL": "https://example.org/0.html"}
    assert by_path[first_red]["AUTHOR"] == f"Painter {len(collection.red) - 1}"
    assert by_path[collection.tints[0]] == {"label": "tint", "year": "1500"}
    assert by_path["grey/grey-03.png"] == {"label": "grey", "year": "1600"}
    assert by_path["grey/grey-00.png"] == {}
    assert idx.manifest["metadata_columns"] == ["split", "class", "AUTHOR", "TITLE", "URL", "label", "year"]
    # a later run without --metadata keeps the joined file
    again = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=3, progress=False))
    assert {i.path: i.meta for i in again.images()} == by_path


def test_metadata_without_path_column_is_a_clear_error(blobnet, collection, tmp_path):
    bad = tmp_path / "m.csv"
    _write_csv(bad, ["name", "label"], [["a", "b"]])
    with pytest.raises(UserError, match="no path column"):
        build_index(blobnet, collection.root, tmp_path / "idx", metadata=bad, progress=False)
    with pytest.raises(UserError, match="does not exist"):
        build_index(blobnet, collection.root, tmp_path / "idx", metadata=tmp_path / "none.csv", progress=False)


def test_missing_and_empty_folders(blobnet, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_index(blobnet, tmp_path / "nowhere", tmp_path / "idx", progress=False)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="holds no images"):
        build_index(blobnet, tmp_path / "empty", tmp_path / "idx", progress=False)


def test_corrupt_files_are_listed_never_fatal(blobnet, collection, tmp_path):
    (collection.root / "bad").mkdir()
    (collection.root / "bad" / "noise.jpg").write_bytes(b"not a jpeg at all")
    good = (collection.root / collection.red[0][0]).read_bytes()
    (collection.root / "bad" / "cut.png").write_bytes(good[: len(good) // 2])  # header fine, data cut
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=3, progress=False))
    assert idx.n_images == 16 and idx.manifest["n_unreadable"] == 2
    assert [p for p, _ in idx.unreadable()] == ["bad/cut.png", "bad/noise.jpg"]
    assert all(why for _, why in idx.unreadable())
    assert "bad/cut.png" not in {i.path for i in idx.images()}


def test_unknown_layers_units_and_images(blobnet, collection, tmp_path):
    with pytest.raises(UnknownLayer, match="no layer 'features.9'"):
        build_index(blobnet, collection.root, tmp_path / "idx", layers=["features.9"], progress=False)
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", layers="features.2,features.0",
                                 k=2, progress=False))
    assert idx.layers == ["features.0", "features.2"]
    with pytest.raises(UnknownLayer, match="Did you mean"):
        idx.examples("features.1", 0)
    with pytest.raises(UnitOutOfRange, match="2 units"):
        idx.examples("features.2", 2)
    with pytest.raises(UnitOutOfRange):
        idx.image(16)
    with pytest.raises(UserError, match="at least 1"):
        build_index(blobnet, collection.root, tmp_path / "idx2", k=0, progress=False)


def test_open_index_errors(blobnet, collection, tmp_path):
    with pytest.raises(UserError, match="not an index folder"):
        open_index(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="holds no index"):
        open_index(tmp_path / "plain")
    out = build_index(blobnet, collection.root, tmp_path / "idx", k=2, progress=False)
    text = (out / MANIFEST).read_text()
    (out / MANIFEST).write_text(text.replace('"complete": true', '"complete": false'))
    with pytest.raises(UserError, match="unfinished"):
        open_index(out)
    (out / MANIFEST).write_text("{ broken")
    with pytest.raises(UserError, match="cannot be read"):
        open_index(out)
    (out / MANIFEST).write_text(text)
    (out / "layers" / "features.2.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="rebuild"):
        open_index(out).examples("features.2", 0)


def test_out_folder_with_other_files_is_refused_and_left_alone(blobnet, collection, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.txt").write_text("precious")
    with pytest.raises(UserError, match="holds other files"):
        build_index(blobnet, collection.root, other, progress=False)
    assert [p.name for p in other.iterdir()] == ["thesis.txt"]


def test_index_of_another_model_is_refused(collection, tmp_path):
    other = blob_model()
    other.weights_id = "blobnet-v2"
    build_index(blob_model(), collection.root, tmp_path / "idx", k=2, progress=False)
    with pytest.raises(UserError, match="weights_id"):
        build_index(other, collection.root, tmp_path / "idx", k=2, progress=False)
    conn = sqlite3.connect(tmp_path / "idx" / "images.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 16  # nothing lost
