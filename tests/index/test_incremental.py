"""Incremental updates: added, changed and removed images give the index a fresh build would give."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.index import build_index, open_index
from imagemachines.index.store import DATABASE, connect

from .conftest import assert_same_index, red_image


def _build(model, root, out, **kw):
    return open_index(build_index(model, root, out, k=4, chunk_size=3, progress=False, **kw))


def test_adding_images_equals_a_rebuild(blobnet, collection, tmp_path):
    aside = tmp_path / "aside"
    aside.mkdir()
    moved = [collection.red[1][0], collection.tints[0], collection.grey[2]]
    for rel in moved:
        shutil.move(collection.root / rel, aside / rel.replace("/", "_"))
    first = _build(blobnet, collection.root, tmp_path / "idx")
    assert first.n_images == 13
    for rel in moved:
        shutil.move(aside / rel.replace("/", "_"), collection.root / rel)
    conn = connect(tmp_path / "idx")
    done_before = {r[0] for r in conn.execute("SELECT id FROM chunks")}
    conn.close()
    updated = _build(blobnet, collection.root, tmp_path / "idx")
    conn = connect(tmp_path / "idx")
    chunks_after = {r[0] for r in conn.execute("SELECT id FROM chunks")}
    conn.close()
    assert done_before <= chunks_after and len(chunks_after - done_before) == 1  # only the 3 new images were run
    assert_same_index(updated, _build(blobnet, collection.root, tmp_path / "fresh"))


def test_changed_and_removed_images_are_detected_by_hash(blobnet, collection, tmp_path):
    _build(blobnet, collection.root, tmp_path / "idx")
    grey = collection.grey[0]
    red_image(255, (30, 30)).save(collection.root / grey)  # a grey picture now holds the reddest blob
    (collection.root / collection.red[0][0]).unlink()  # the former best is gone
    updated = _build(blobnet, collection.root, tmp_path / "idx")
    top = updated.examples("features.2", 0, k=2)
    assert updated.image(top[0].image_id).path == grey
    assert collection.red[0][0] not in {i.path for i in updated.images()}
    assert_same_index(updated, _build(blobnet, collection.root, tmp_path / "fresh"))


def test_same_size_and_mtime_but_other_content_is_found_with_rehash(blobnet, collection, tmp_path):
    import os

    bmp = collection.root / "grey" / "plain.bmp"  # BMP: the file size depends only on the picture's size
    Image.new("RGB", (96, 64), (128, 128, 128)).save(bmp)
    _build(blobnet, collection.root, tmp_path / "idx")
    st = bmp.stat()
    red_image(255, (40, 30)).save(bmp)
    os.utime(bmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert bmp.stat().st_size == st.st_size
    again = _build(blobnet, collection.root, tmp_path / "idx", rehash=True)
    assert again.image(again.examples("features.2", 0, k=1)[0].image_id).path == "grey/plain.bmp"
    assert_same_index(again, _build(blobnet, collection.root, tmp_path / "fresh"))


def test_other_settings_in_the_same_folder_are_refused_unless_rebuild(blobnet, collection, tmp_path):
    _build(blobnet, collection.root, tmp_path / "idx")
    with pytest.raises(UserError, match="other settings.*k: 4 → 5"):
        build_index(blobnet, collection.root, tmp_path / "idx", k=5, progress=False)
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=5, rebuild=True, progress=False))
    assert idx.k == 5 and (tmp_path / "idx" / DATABASE).is_file()


def test_merging_the_chunks_again_gives_the_same_index_and_names_each_layer(blobnet, collection, tmp_path):
    from imagemachines.index.merge import merge_all

    from .conftest import snapshot

    out = build_index(blobnet, collection.root, tmp_path / "idx", k=4, chunk_size=5, progress=False)
    idx = open_index(out)
    before, layers = snapshot(idx), {layer: idx.channels(layer) for layer in idx.layers}
    conn, seen = connect(out), []
    try:
        assert merge_all(out, conn, layers, 4, True, on_layer=seen.append) == 16
    finally:
        conn.close()
    assert seen == list(layers) and snapshot(open_index(out)) == before
