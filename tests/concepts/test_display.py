"""A study shows itself in Jupyter: every class's ranked concepts with their pictures inline, nothing on disk."""

from __future__ import annotations

import re

from imagemachines.concepts import discover
from tests.concepts.conftest import colour_model


def test_a_study_and_a_class_display_inline(painted, cache_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = discover(colour_model(), painted.root, "all", concepts=2, cache=cache_dir, render_size=32, render_steps=2,
                     progress=False)
    html = study._repr_html_()
    sources = re.findall(r'src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert 'id="class-red"' in html and 'id="class-blue"' in html and "Concepts shared between classes" in html
    assert html.count('class="cx-concept"') == 4 and html.count("data:image/png") >= 4 + 2  # renders and curves
    one = study["red"]._repr_html_()
    assert 'id="class-blue"' not in one and one.count('class="cx-concept"') == 2
    assert not list(tmp_path.rglob("*.html")) and not list(tmp_path.rglob("*.jpg"))  # all inline, nothing written
