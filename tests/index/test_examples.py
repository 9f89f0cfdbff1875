"""The examples page and CSV: the unit's top (and bottom) images with overlays, crops, values and metadata."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.index import build_index, open_index
from imagemachines.index.examples import class_channel, load_index_model, write_examples


@pytest.fixture
def index(blobnet, collection, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,artist,page_url\n" + "".join(
        f'{p},"Painter <b>{i}</b>",https://example.org/{i}\n' for i, (p, _) in enumerate(collection.red)))
    return open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=4, metadata=labels,
                                  progress=False))


def test_page_and_csv_show_the_top_images_with_overlays_and_metadata(index, blobnet, collection, tmp_path):
    page = write_examples(index, blobnet, "features.2", 0, tmp_path / "ex", k=3, render_size=64, render_steps=4,
                          progress=False)
    rows = list(csv.DictReader((tmp_path / "ex" / "examples.csv").read_text(encoding="utf-8").splitlines()))
    assert [r["path"] for r in rows] == [p for p, _ in collection.red[:3]]
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and rows[0]["percentile"] == "100.00"
    assert rows[0]["artist"] == "Painter <b>0</b>" and rows[0]["page_url"] == "https://example.org/0"
    assert {"value", "row", "col", "x0", "y0", "x1", "y1"} <= set(rows[0])
    html = page.read_text()
    assert "Painter &lt;b&gt;0&lt;/b&gt;" in html and "<b>0</b>" not in html  # escaped
    assert 'href="https://example.org/0"' in html and 'id="heat"' in html
    for stem in ("001", "002", "003"):
        for suffix in ("", "-heat", "-crop"):
            assert Image.open(tmp_path / "ex" / "files" / f"{stem}{suffix}.jpg").size[0] > 0
    assert Image.open(tmp_path / "ex" / "files" / "render.png").size == (64, 64)
    assert "http" not in html.replace("https://example.org", "")  # offline: no external assets
    # the crop is centred on the blob: redder than the whole picture
    crop = Image.open(tmp_path / "ex" / "files" / "001-crop.jpg").convert("RGB")
    whole = Image.open(tmp_path / "ex" / "files" / "001.jpg").convert("RGB")
    def redness(im):
        a = np.asarray(im, dtype=float)
        return float((a[..., 0] - (a[..., 1] + a[..., 2]) / 2).mean())

    assert redness(crop) > 2 * redness(whole) > 0


def test_negative_and_class_and_without_model(index, collection, tmp_path):
    write_examples(index, None, "features.0", 0, tmp_path / "neg", negative=True, progress=False)
    rows = list(csv.DictReader((tmp_path / "neg" / "examples.csv").read_text(encoding="utf-8").splitlines()))
    assert [r["path"] for r in rows] == collection.tints[:4]
    assert class_channel(index, "red") == 0 and class_channel(index, "1") == 1
    with pytest.raises(UserError, match="no class 'green'"):
        class_channel(index, "green")


def test_model_with_other_weights_is_refused(index, monkeypatch):
    from imagemachines import models

    other = index.manifest.copy()
    monkeypatch.setattr(models, "load_model", lambda *a, **k: _other_model())
    with pytest.raises(UserError, match="was made with weights blobnet-v1"):
        load_index_model(index, "blobnet")
    assert other == index.manifest


def _other_model():
    from .conftest import blob_model

    m = blob_model()
    m.weights_id = "something-else"
    return m


def test_a_new_page_deletes_only_the_pictures_the_earlier_one_wrote(index, blobnet, tmp_path):
    out = tmp_path / "ex"
    (out / "files").mkdir(parents=True)
    mine = {"notes.txt": b"my notes", "my-photo.jpg": b"\xff\xd8 mine", "9999.png": b"mine too"}
    for name, data in mine.items():
        (out / "files" / name).write_bytes(data)
    write_examples(index, blobnet, "features.2", 0, out, k=3, render_size=64, render_steps=2, progress=False)
    first = {p.name for p in (out / "files").iterdir()}
    assert {"001.jpg", "003-heat.jpg", "render.png"} <= first
    write_examples(index, None, "features.2", 0, out, k=1, render=False, progress=False)  # fewer, no heat
    left = {p.name for p in (out / "files").iterdir()}
    assert left == {"001.jpg", "001-crop.jpg", ".written.json", *mine}  # the earlier 002…, heat, render: gone
    for name, data in mine.items():
        assert (out / "files" / name).read_bytes() == data


def test_a_page_never_writes_over_a_file_it_did_not_write(index, tmp_path):
    out = tmp_path / "ex"
    (out / "files").mkdir(parents=True)
    (out / "files" / "002.jpg").write_bytes(b"the user's own 002.jpg")
    with pytest.raises(UserError, match="did not write.*002.jpg"):
        write_examples(index, None, "features.2", 0, out, k=3, render=False, progress=False)
    assert (out / "files" / "002.jpg").read_bytes() == b"the user's own 002.jpg"


def test_a_page_written_before_the_record_is_replaced_like_its_own(index, tmp_path):
    out = tmp_path / "ex"
    write_examples(index, None, "features.2", 0, out, k=3, render=False, progress=False)
    (out / "files" / ".written.json").unlink()  # as an earlier version left the folder
    (out / "files" / "mine.txt").write_text("keep")
    write_examples(index, None, "features.2", 0, out, k=1, render=False, progress=False)
    assert {p.name for p in (out / "files").iterdir()} == {"001.jpg", "001-crop.jpg", ".written.json", "mine.txt"}


def test_formulas_from_metadata_never_reach_a_spreadsheet_and_numbers_stay_numbers(blobnet, collection, tmp_path):
    """A WGA subset.csv (written through the project's CSV helper: its '=…' title and '-' date carry a leading ')
    is joined as it was before it was written; examples.csv neutralises the title again, keeps negative values
    as numbers, and a spreadsheet formula never starts a cell."""
    from imagemachines import csvfiles

    with open(collection.root.parent / "subset.csv", "w", newline="", encoding="utf-8") as f:
        w = csvfiles.dict_writer(f, ["path", "TITLE", "DATE"])
        w.writeheader()
        w.writerows({"path": f"images/{p}", "TITLE": '=HYPERLINK("http://example.org/x","Open")', "DATE": "-"}
                    for p in collection.tints)
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=3, progress=False))
    assert idx.image(next(i.id for i in idx.images() if i.path == collection.tints[0])).meta == {
        "TITLE": '=HYPERLINK("http://example.org/x","Open")', "DATE": "-"}
    write_examples(idx, None, "features.0", 0, tmp_path / "ex", negative=True, render=False, progress=False)
    raw = list(csv.reader((tmp_path / "ex" / "examples.csv").read_text(encoding="utf-8").splitlines()))
    header, rows = raw[0], raw[1:]
    cell = dict(zip(header, rows[0], strict=True))
    assert cell["TITLE"] == '\'=HYPERLINK("http://example.org/x","Open")' and cell["DATE"] == "'-"
    assert float(cell["value"]) < 0 and cell["value"].startswith("-")  # the redness of a blue tint: a number
    for row in raw:
        assert all(not c.startswith(("=", "+", "@", "\t", "\r")) for c in row)
        assert all(not c.startswith("-") or re.fullmatch(r"-[\d.e+-]+", c) for c in row)


@pytest.fixture
def sourced(blobnet, collection, tmp_path):
    """The red pictures all come from one source ("thumbs"); a label column says what they show."""
    labels = tmp_path / "sourced.csv"
    rows = [(p, "red", "thumbs") for p, _ in collection.red] + [(p, "blue", "scans") for p in collection.tints] + [
        (p, "grey", "scans") for p in collection.grey]
    labels.write_text("path,label,source\n" + "".join(f"{p},{lab},{src}\n" for p, lab, src in rows))
    return open_index(build_index(blobnet, collection.root, tmp_path / "sourced-idx", k=6, metadata=labels,
                                  progress=False))


def test_the_page_says_what_the_top_paintings_share_and_how_they_were_photographed(sourced, tmp_path):
    from html import escape

    from imagemachines.index.enrichment import format_p

    page = write_examples(sourced, None, "features.2", 0, tmp_path / "ex", progress=False).read_text()
    notes = {e.value: e for e in sourced.enrichment("features.2", 0)}
    red, thumbs = notes["red"], notes["thumbs"]
    assert (red.in_group, red.group, red.in_collection, red.collection) == (6, 6, 6, 16)
    assert f"label: <b>red ×{16 / 6:.1f}, {escape(format_p(red.p_adjusted))}</b>" in page
    assert "(6 of 6; 6 of 16 in the collection)" in page and "Holm's correction over 6 values" in page
    assert 'id="provenance"' in page and f"source: thumbs ×{16 / 6:.1f}" in page and thumbs.provenance
    assert "source: <b>" not in page  # the photographs' values are a warning, not a finding about the paintings
    assert page.count("96 × 64 px · thumbs") == 6  # beside every example
    assert "ranked by the unit&#39;s maximum over the interior of its map" in page
    assert 'id="border"' in page and "Border unit" not in page  # the blobs are inside the pictures
    rows = list(csv.DictReader((tmp_path / "ex" / "examples.csv").read_text(encoding="utf-8").splitlines()))
    assert {(r["image_width"], r["image_height"], r["source"], r["on_border"]) for r in rows} == {
        ("96", "64", "thumbs", "0")}
    # the bottom six are blue and grey from the scans: no photo warning, and the label the test finds is theirs
    bottom = write_examples(sourced, None, "features.0", 0, tmp_path / "neg", negative=True,
                            progress=False).read_text()
    assert 'id="provenance"' not in bottom and "label: <b>red" not in bottom


def test_a_border_unit_is_flagged_on_its_page_and_its_border_examples_marked(tmp_path):
    from .test_peaks import SIDE, frame_model

    root = tmp_path / "images"
    root.mkdir()
    for i, grey in enumerate((150, 180, 210)):
        Image.new("RGB", (SIDE, SIDE), (grey,) * 3).save(root / f"plain-{i}.png")
    model = frame_model()
    idx = open_index(build_index(model, root, tmp_path / "idx", layers=["features.0"], k=3, ranking="full",
                                 progress=False))
    page = write_examples(idx, model, "features.0", 0, tmp_path / "ex", render=False, progress=False).read_text()
    assert "Border unit: it peaks on the border in 100 % of 3 paintings (border: 12 % of the map)" in page
    assert "crops may show the painting&#39;s edge or background" in page
    assert page.count('<span class="edge">on the border</span>') == 3
    assert "over the whole map, border included" in page
    rows = list(csv.DictReader((tmp_path / "ex" / "examples.csv").read_text(encoding="utf-8").splitlines()))
    assert [r["on_border"] for r in rows] == ["1", "1", "1"] and [r["row"] for r in rows] == ["0", "0", "0"]
    calm = write_examples(idx, model, "features.0", 1, tmp_path / "calm", render=False, progress=False).read_text()
    assert "Border unit" not in calm and "This unit peaks on the border in 0 % of 3 paintings" in calm


def test_a_caption_shows_the_photographs_size_and_source_once(blobnet, collection, tmp_path):
    """A catalogue with its own width, height and Source columns (the shared paintings' labels.csv has them):
    the photo line says them, the metadata lines under it do not say them again."""
    from imagemachines.index.unit_notes import caption_meta

    labels = tmp_path / "catalogue.csv"
    paths = [p for p, _ in collection.red] + list(collection.tints) + list(collection.grey)
    labels.write_text("path,title,width,height,Source\n" + "".join(f"{p},Work {i},96,64,thumbs\n"
                                                                  for i, p in enumerate(paths)))
    idx = open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=3, metadata=labels, progress=False))
    page = write_examples(idx, None, "features.2", 0, tmp_path / "ex", render=False, progress=False).read_text()
    assert page.count("96 × 64 px · thumbs") == 3  # the photo line of each example
    assert page.count("title: Work") == 3
    assert not re.search(r">\s*(width|height|Source): ", page)  # no metadata line says them again
    assert caption_meta({"title": "T", "WIDTH": "96", " height ": "64", "source": "s", "path": "p", "date": ""}) == {
        "title": "T"}
