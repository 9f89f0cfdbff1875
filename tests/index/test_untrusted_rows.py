"""An index is untrusted input: a row of ``images.sqlite`` that names an absolute path, climbs out with ``..`` or
leads out through a symbolic link is refused by every reader of the pictures, and nothing outside the image
folder is read, shown or published. The index pass itself lists links that lead out as unreadable."""

from __future__ import annotations

import pytest
from PIL import Image

from imagemachines.index import build_index, open_index
from imagemachines.index.scan import OutsideImageFolder, image_path
from tests.index.conftest import blob_model, make_collection
from tests.index.untrusted import KINDS, built, secret, shows_secret, tamper

__all__ = ["built", "secret"]  # fixtures



def test_the_one_function_refuses_each_way_out_and_allows_the_folder(tmp_path, secret):
    from imagemachines.index.scan import sha256_file

    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "sub" / "a.png")
    (root / "inside-link.png").symlink_to(root / "sub" / "a.png")  # a link that stays inside is fine
    (root / "out-link.png").symlink_to(secret)
    (root / "dir-link").symlink_to(secret.parent, target_is_directory=True)
    assert image_path(root, "sub/a.png") == (root / "sub" / "a.png").resolve()
    assert image_path(root, "inside-link.png") == (root / "sub" / "a.png").resolve()
    for rel, why, sha in [(str(secret), "absolute", sha256_file(secret)), ("/etc/passwd", "absolute", None),
                          ("../private/secret.png", "'..'", sha256_file(secret)),
                          ("sub/../../private/secret.png", "'..'", None), ("..\\private\\secret.png", "'..'", None),
                          ("C:\\secret.png", "absolute", None), ("out-link.png", "symbolic link", None),
                          ("out-link.png", "symbolic link", sha256_file(root / "sub" / "a.png")),
                          ("dir-link/secret.png", "symbolic link", "0" * 64), ("", "empty", None),
                          ("a\0b.png", "NUL", None)]:
        with pytest.raises(OutsideImageFolder, match=why) as err:
            image_path(root, rel, sha)
        assert "only reads the files inside its image folder" in str(err.value) and "Refused" in str(err.value)
    # a link out to the very file the index recorded (its SHA-256): the index's own pass saw it, so it is read
    assert image_path(root, "out-link.png", sha256_file(secret)) == secret.resolve()
    assert image_path(root, "dir-link/secret.png", sha256_file(secret)) == secret.resolve()


@pytest.mark.parametrize("kind", KINDS)
def test_the_query_layer_refuses_a_row_that_leads_out(built, secret, kind):
    col, out = built
    tamper(out, kind, col, secret, rows=[0])
    idx = open_index(out)
    with pytest.raises(OutsideImageFolder, match="Refused"):
        idx.image_file(0)
    assert Image.open(idx.image_file(1)).size == (96, 64)  # the other rows are read as before


@pytest.mark.parametrize("kind", KINDS)
def test_the_examples_page_refuses_and_publishes_nothing_from_outside(built, secret, tmp_path, kind):
    from imagemachines.index.examples import write_examples

    col, out = built
    tamper(out, kind, col, secret)
    with pytest.raises(OutsideImageFolder):
        write_examples(open_index(out), blob_model(), "features.2", 0, tmp_path / "ex", render=False,
                       progress=False)
    assert not shows_secret(tmp_path / "ex")


@pytest.mark.parametrize("kind", KINDS)
def test_the_atlas_refuses_and_publishes_nothing_from_outside(built, secret, tmp_path, kind):
    from imagemachines.atlas.examples import examples_sheet, unit_examples

    col, out = built
    tamper(out, kind, col, secret)
    idx = open_index(out)
    with pytest.raises(OutsideImageFolder):
        unit_examples(idx, blob_model(), "features.2", 0, tmp_path / "site" / "ex")
    with pytest.raises(OutsideImageFolder):
        examples_sheet(idx, blob_model(), "features.2", 0, k=2)
    assert not shows_secret(tmp_path / "site")


@pytest.mark.parametrize("kind", KINDS)
def test_explains_similar_paintings_refuse_and_publish_nothing_from_outside(built, secret, tmp_path, kind):
    from imagemachines.explain.page import Options, write_explanation

    col, out = built
    tamper(out, kind, col, secret)
    idx = open_index(out)
    painting = Image.open(col.root / col.red[0][0]).convert("RGB")
    with pytest.raises(OutsideImageFolder):
        write_explanation(blob_model(), painting, tmp_path / "explain", Options(renders=0, similar=3, progress=False),
                          index=idx)
    assert not shows_secret(tmp_path / "explain")


def test_a_folder_of_links_to_files_elsewhere_is_indexed_and_read_until_a_link_is_turned_elsewhere(tmp_path, secret):
    """A folder of symbolic links (a WGA subset made with --link symbolic, a held-out split) is the user's own:
    indexed and read as before. A link turned to another file after indexing is refused."""
    from imagemachines.index.examples import write_examples

    col = make_collection(tmp_path / "store", n_red=3, n_tint=1, n_grey=1)
    links = tmp_path / "links"
    for rel, _ in col.red:
        (links / rel).parent.mkdir(parents=True, exist_ok=True)
        (links / rel).symlink_to(col.root / rel)
    idx = open_index(build_index(blob_model(), links, tmp_path / "idx", k=3, progress=False))
    assert idx.n_images == 3 and idx.unreadable() == []
    write_examples(idx, None, "features.2", 0, tmp_path / "ex", render=False, progress=False)
    assert len(list((tmp_path / "ex" / "files").glob("00?.jpg"))) == 3
    first = idx.examples("features.2", 0, k=1)[0].image_id
    link = links / idx.image(first).path
    link.unlink()
    link.symlink_to(secret)  # the same name, another file
    with pytest.raises(OutsideImageFolder, match="not the one the index recorded"):
        write_examples(open_index(tmp_path / "idx"), None, "features.2", 0, tmp_path / "ex2", render=False,
                       progress=False)
    assert not shows_secret(tmp_path / "ex2")
