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
