"""The pages of an atlas (Jinja2 templates under ``report/templates/atlas_*.html``) and its JSON manifest,
written from the records in the folder, so they always show every finished image, whichever run made it.

Every link is relative (the folder works from ``file://`` or any static host); URLs are
``<model>/index.html``, ``<model>/<layer>/index.html`` and ``<model>/<layer>/<channel>.html``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from imagemachines import __version__
from imagemachines.atlas.links import serve_link
from imagemachines.atlas.state import AtlasState
from imagemachines.fileio import atomic_write
from imagemachines.models.loaded import LoadedModel
from imagemachines.report import write_html

STRIP = 8
MANIFEST = "atlas.json"


def _units(state: AtlasState, model: LoadedModel, methods: list[str]) -> dict[str, dict[int, list[dict]]]:
    """layer -> channel -> images (method order as asked, then seed), in the model's layer order."""
    grouped: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for key, recipe in state.records():
        grouped[key.layer][key.channel].append({
            "method": key.method, "seed": key.seed, "activation": recipe.get("activation"),
            "file": f"img/{state.image_path(key).name}", "recipe": recipe})
    order = {info.name: i for i, info in enumerate(model.layers(all=True))}
    rank = {m: i for i, m in enumerate(methods)}
    out = {}
    for layer in sorted(grouped, key=lambda name: order.get(name, len(order))):
        out[layer] = {c: sorted(imgs, key=lambda im: (rank.get(im["method"], len(rank)), im["method"], im["seed"]))
                      for c, imgs in sorted(grouped[layer].items())}
    return out


def write_site(state: AtlasState, model: LoadedModel, settings, *, index=None, concepts: dict | None = None,
               progress: bool = True) -> Path:
    """All pages and the manifest of *state*'s model, and the site's front page; returns the front page.
    *concepts*: a concept study's ``concepts.json`` (read from ``settings.concepts``), written as pages too."""
    from tqdm.auto import tqdm

    units = _units(state, model, list(settings.methods))
    name = state.model
    layers = []
    for layer, channels in units.items():
        info = model.layer(layer) if layer in {i.name for i in model.layers(all=True)} else None
        layers.append({"name": layer, "channels": info.channels if info else None, "type": info.type if info else "",
                       "rendered": len(channels),
                       "strip": [{"channel": c, "thumb": f"{layer}/{imgs[0]['file']}"}
                                 for c, imgs in list(channels.items())[:STRIP]]})
    concept_rows = []
    if concepts is not None:
        from imagemachines.atlas.concepts import write_concepts

        concept_rows = write_concepts(state.root, settings.concepts, concepts, name)
    write_html(state.root / "index.html", "atlas_model.html", title=f"{name}: atlas", model=name,
               weights=model.weights_id, layers=layers, version=__version__, concepts=concept_rows,
               map_page="map/map.html" if getattr(settings, "map", False) else None)
    bar = tqdm(total=sum(len(c) for c in units.values()), unit="page", desc="pages", disable=not progress)
    for layer, channels in units.items():
        info = next(x for x in layers if x["name"] == layer)
        write_html(state.root / layer / "index.html", "atlas_layer.html", title=f"{name} {layer}", model=name,
                   layer=info, units=[{"channel": c, "thumb": imgs[0]["file"], "activation": imgs[0]["activation"]}
                                      for c, imgs in channels.items()])
        order = list(channels)
        for i, (channel, images) in enumerate(channels.items()):
            first = images[0]["recipe"]
            examples = None
            if index is not None:
                from imagemachines.atlas.examples import unit_examples

                examples = unit_examples(index, model, layer, channel, state.root / layer / "ex")
            write_html(state.root / layer / f"{channel}.html", "atlas_unit.html",
                       title=f"{name} {layer}:{channel}", model=name, layer=info, channel=channel,
                       images=[{**im, "recipe_text": json.dumps(im["recipe"], indent=1, sort_keys=True)}
                               for im in images],
                       prev=order[i - 1] if i > 0 else None, next=order[i + 1] if i + 1 < len(order) else None,
                       serve=serve_link(settings.serve_url, model.name, layer, channel, method=images[0]["method"],
                                        size=first.get("size", 224), steps=first.get("steps", 256),
                                        seed=images[0]["seed"]),
                       examples=examples)
            bar.update(1)
    bar.close()
    _write_manifest(state, model, units)
    return write_front_page(state.site)


def _write_manifest(state: AtlasState, model: LoadedModel, units: dict) -> None:
    manifest = {
        "atlas": 1, "imagemachines": __version__, "model": model.name, "weights_id": model.weights_id,
        "settings": state.read_settings(),
        "units": [{"layer": layer, "channel": c, "page": f"{layer}/{c}.html",
                   "images": [{"method": im["method"], "seed": im["seed"], "file": f"{layer}/{im['file']}",
                               "activation": im["activation"], "recipe": im["recipe"]} for im in imgs]}
                  for layer, channels in units.items() for c, imgs in channels.items()],
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    atomic_write(state.root / MANIFEST, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_front_page(site: Path) -> Path:
    """``SITE/index.html``: the models this site holds."""
    models = []
    for settings in sorted(Path(site).glob("*/settings.json")):
        data = json.loads(settings.read_text(encoding="utf-8"))
        manifest = settings.parent / MANIFEST
        n = len(json.loads(manifest.read_text(encoding="utf-8"))["units"]) if manifest.is_file() else 0
        models.append({"dir": settings.parent.name, "model": data.get("model"), "weights": data.get("weights_id"),
                       "units": n})
    return write_html(Path(site) / "index.html", "atlas_site.html", title="imagemachines atlas", models=models)

