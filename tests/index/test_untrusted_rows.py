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
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "sub" / "a.png")
    (root / "inside-link.png").symlink_to(root / "sub" / "a.png")  # a link that stays inside is fine
    (root / "out-link.png").symlink_to(secret)
    (root / "dir-link").symlink_to(secret.parent, target_is_directory=True)
    assert image_path(root, "sub/a.png") == (root / "sub" / "a.png").resolve()
    assert image_path(root, "inside-link.png") == (root / "sub" / "a.png").resolve()
    for rel, why in [(str(secret), "absolute"), ("/etc/passwd", "absolute"), ("../private/secret.png", "'..'"),
                     ("sub/../../private/secret.png", "'..'"), ("..\\private\\secret.png", "'..'"),
                     ("C:\\secret.png", "absolute"), ("out-link.png", "symbolic link"),
                     ("dir-link/secret.png", "symbolic link"), ("", "empty"), ("a\0b.png", "NUL")]:
        with pytest.raises(OutsideImageFolder, match=why) as err:
            image_path(root, rel)
        assert "inside its image folder" in str(err.value) and "Refused" in str(err.value)


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


def test_the_index_pass_lists_a_link_out_as_unreadable_and_never_reads_it(tmp_path, secret):
    col = make_collection(tmp_path / "images", n_red=2, n_tint=1, n_grey=1)
    (col.root / "red" / "zz-link.png").symlink_to(secret)
    idx = open_index(build_index(blob_model(), col.root, tmp_path / "idx", k=2, progress=False))
    assert [p for p, _ in idx.unreadable()] == ["red/zz-link.png"]
    assert "outside the image folder" in idx.unreadable()[0][1]
    assert idx.n_images == 4
    assert all(i.path != "red/zz-link.png" for i in idx.images())
