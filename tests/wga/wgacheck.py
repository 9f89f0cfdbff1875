"""Checks shared by the download tests: the manifest and the disk agree."""

from __future__ import annotations

from PIL import Image

from imagemachines.wga.images import file_digest
from imagemachines.wga.manifest import Manifest
from imagemachines.wga.paths import manifest_db, store_dir


def check_store_matches_manifest(root, store, expected_ok: dict[str, bytes]):
    """Every ok item is on disk with its recorded size and hash (and the server's bytes); nothing else is."""
    folder = store_dir(root, store)
    with Manifest(manifest_db(root), readonly=True) as m:
        ok = {it.id: it for it in m.items(store, states=("ok",))}
    assert set(ok) == set(expected_ok)
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == {it.path for it in ok.values()}  # no partial or stray file
    for key, item in ok.items():
        size, digest = file_digest(folder / item.path)
        assert (size, digest) == (item.bytes, item.sha256)
        if expected_ok[key] is not None:
            assert (folder / item.path).read_bytes() == expected_ok[key]
        Image.open(folder / item.path).load()
