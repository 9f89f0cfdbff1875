"""The shared HTML writer: templates render, text is escaped, files are written atomically."""

from imagemachines.report import render_html, write_html


def test_pages_escape_text_from_metadata(tmp_path):
    page = write_html(tmp_path / "p.html", "base.html", title="<script>alert(1)</script> & co")
    text = page.read_text()
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in text
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_context_is_an_error_not_an_empty_string():
    import jinja2
    import pytest

    with pytest.raises(jinja2.UndefinedError):
        render_html("base.html")


def test_galleries_and_subset_pages_escape_metadata(tmp_path):
    from collections import Counter

    from PIL import Image

    from imagemachines.train.gallery import Card, write_page
    from imagemachines.wga.report import write_index

    evil = '<img src=x onerror="alert(1)">'
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    page = write_page(tmp_path / "g" / "top.html", f"Top {evil}", [
        Card(tmp_path / "a.jpg", [("meta", f"Title: {evil}")], {evil: 0.5}),
        Card(tmp_path / "missing.jpg", [("", "gone")])], note=evil).read_text()
    assert "onerror=\"alert" not in page and page.count("&lt;img src=x onerror=&#34;alert(1)&#34;&gt;") == 5
    assert page.count("<figure>") == 2 and 'src="thumbs/00000.jpg"' in page and "(unreadable)" in page
    write_index(tmp_path / "index.html", evil, [{"class": "portrait", "path": "train/portrait/1.jpg",
                                                 "TITLE": evil, "AUTHOR": "A & B", "DATE": "1500"}],
                {"portrait": Counter(train=1)}, ["train", "val"], [evil])
    text = (tmp_path / "index.html").read_text()
    assert "onerror=\"alert" not in text and "A &amp; B" in text and 'src="train/portrait/1.jpg"' in text
