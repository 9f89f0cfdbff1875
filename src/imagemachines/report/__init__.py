"""HTML pages people look at, written from Jinja2 templates: the project's one way to write HTML.

Every page extends ``templates/base.html`` (shared style, self-contained: no external assets, works from
``file://``). Autoescaping is on, so metadata from catalogs and CSV files can never inject markup.

    from imagemachines.report import write_html
    write_html(out / "examples.html", "examples.html", title="…", rows=rows)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from imagemachines.fileio import atomic_write

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment():
    """The shared Jinja2 environment (templates from this package, autoescape, strict undefined, the
    ``percentile`` and ``caption_meta`` filters)."""
    import jinja2

    from imagemachines.index.records import percentile_label
    from imagemachines.index.unit_notes import caption_meta

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["percentile"] = percentile_label  # {{ p|percentile }}th percentile: the one rule of every page
    env.filters["caption_meta"] = caption_meta  # {{ meta|caption_meta }}: what a caption lists under its photo line
    return env


def render_html(template: str, **context) -> str:
    """The page *template* (a file name under ``templates/``) filled with *context*."""
    return environment().get_template(template).render(**context)


def write_html(path: Path, template: str, **context) -> Path:
    """Render *template* with *context* and write it atomically to *path*."""
    text = render_html(template, **context)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return Path(path)
