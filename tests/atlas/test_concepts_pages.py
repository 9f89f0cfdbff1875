"""`atlas --concepts`: a concept study becomes a page per class, linked from the model page, with every picture
inside the site; a study of other weights is refused."""

from __future__ import annotations

import re

import pytest

from imagemachines.atlas import AtlasSettings, build_atlas
from imagemachines.concepts import discover
from imagemachines.errors import UserError
from tests.concepts.conftest import colour_model, make_paintings
from tests.conftest import tiny_loaded_model


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    painted = make_paintings(tmp / "paintings", n=3)
    study = discover(colour_model(), painted.root, "all", concepts=2, cache=tmp / "cache", render_size=32,
                     render_steps=2, crops_shown=3, progress=False)
    study.save(tmp / "concepts", progress=False)
    return tmp / "concepts"


def test_class_pages_are_linked_from_the_model_page_and_self_contained(tmp_path, study_dir):
    site = tmp_path / "site"
    build_atlas(colour_model(), site, AtlasSettings(layers=["features.2"], size=32, steps=2, concepts=study_dir),
                progress=False)
    model_page = (site / "colournet" / "index.html").read_text()
    assert 'href="concepts/red.html"' in model_page and 'href="concepts/blue.html"' in model_page
    assert 'href="concepts/index.html"' in model_page
    red = (site / "colournet" / "concepts" / "red.html").read_text()
    assert "red: 2 concepts" in red and "blue: 2 concepts" not in red
    assert "Concepts shared between classes" not in red
    overview = (site / "colournet" / "concepts" / "index.html").read_text()
    assert "Concepts shared between classes" in overview and "blue: 2 concepts" in overview
    for page in ("index.html", "red.html", "blue.html"):
        text = (site / "colournet" / "concepts" / page).read_text()
        links = re.findall(r'(?:src|href)="([^"#:]+)"', text)
        assert len(links) > 10
        assert all((site / "colournet" / "concepts" / link).resolve().is_file() for link in links), page
    for link in re.findall(r'(?:src|href)="(concepts/[^"#:]+)"', model_page):
        assert (site / "colournet" / link).is_file()
    # the class page shows what the command's own page shows for that class
    own = (study_dir / "concepts.html").read_text()
    section = own[own.index('id="class-red"'):own.index('id="class-blue"')]
    assert section[:section.rindex("</section>")] in red


def test_a_study_of_other_weights_is_refused_before_rendering(tmp_path, study_dir):
    with pytest.raises(UserError, match="colournet-v1.*not with this atlas's tiny"):
        build_atlas(tiny_loaded_model(), tmp_path / "site", AtlasSettings(layers=["features.3"], size=32, steps=2,
                                                                          concepts=study_dir), progress=False)
    assert not (tmp_path / "site").exists() or not any((tmp_path / "site").rglob("*.webp"))
