"""The output folder of a concept study, and its inline display in Jupyter.

    concepts.html          per class: concepts ranked by importance (bar), render, best crops (each linked to its
                           painting), whole paintings with the concept's map, faithfulness curves, the numbers
    concepts.json          every number (importances, curves, R², stability, crops with boxes and metadata…)
    concepts.safetensors   per class: W, U (crop coefficients), crop rows and boxes, concept maps (cells)
    crops/ maps/ renders/ curves/ paintings/   the pictures the page shows

The page works offline (relative links). Pictures are drawn from the paintings themselves (crops in the
painting's pixels, boxes from the JSON), so they are exactly the regions that were measured.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from imagemachines.concepts.across import THRESHOLD
from imagemachines.fileio import atomic_write

CROP_SIDE = 160      # px: crop thumbnails (longer side)
MAP_SIDE = 360       # px: whole paintings with a concept map
INLINE_MAP_SIDE = 240  # … in a notebook, where every picture is inline
PAINTING_SIDE = 900  # px: the painting a crop links to
FOLDERS = ("crops", "maps", "renders", "curves", "paintings")

Sink = Callable[[str, Image.Image, str], str]  # (name, picture, format) -> src for <img>


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"


def caption(meta: dict, path: str) -> tuple[str, str]:
    """(short caption, longer title) of a painting from its metadata (artist, title, date), else its path."""
    from imagemachines.serve.collection import display_meta

    shown = display_meta(meta)
    parts = [v for v in (shown.get("artist"), shown.get("title"), shown.get("date")) if v]
    short = ", ".join(parts) if parts else Path(path).name
    return short, f"{short} — {path}"


def file_sink(out: Path) -> Sink:
    def save(name: str, image: Image.Image, fmt: str) -> str:
        target = out / name
        if fmt == "PNG":
            atomic_write(target, lambda tmp: image.save(tmp, format="PNG", optimize=True))
        else:
            atomic_write(target, lambda tmp: image.convert("RGB").save(tmp, format="JPEG", quality=88))
        return name
    return save


def inline_sink(name: str, image: Image.Image, fmt: str) -> str:
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, format="PNG")
    else:
        image.convert("RGB").save(buf, format="JPEG", quality=80)
    mime = "png" if fmt == "PNG" else "jpeg"
    return f"data:image/{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


class _Paintings:
    """Paintings read once each (small copies kept for the run)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, Image.Image | None] = {}

    def get(self, path: str) -> Image.Image | None:
        from imagemachines.concepts.crops import read_rgb

        if path not in self._cache:
            try:
                self._cache[path] = read_rgb(self.root / path)
            except Exception:  # noqa: BLE001 - a painting gone since the run: the page says so
                self._cache[path] = None
        return self._cache[path]


def _fit(image: Image.Image, side: int, upscale: bool = False) -> Image.Image:
    scale = side / max(image.size)
    if scale >= 1 and not upscale:
        return image.copy()
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def curves_figure(curves, name: str) -> Image.Image:
    """Deletion and insertion curves of one class as a picture (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 3.2), dpi=100)
    for ax, kind, title in ((fig.add_subplot(1, 2, 1), "deletion", "taking out"),
                            (fig.add_subplot(1, 2, 2), "insertion", "putting in")):
        data = getattr(curves, kind)
        steps = np.arange(len(data["concepts"]))
        ax.plot(steps, data["concepts"], color="#e66100", lw=2.2, marker="o", ms=3, label="concepts, by importance")
        ax.plot(steps, data["random"], color="#777", lw=1.6, ls="--",
                label=f"concepts, random (mean of {curves.random_draws})")
        ax.plot(steps, data["units"], color="#1a5fb4", lw=1.6, ls=":", marker=".", label="single units, by importance")
        ax.set_title(f"{title} concepts or units")
        ax.set_xlabel("how many")
        ax.set_ylabel(f"p({name})")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def class_view(c, sink: Sink, paintings: _Paintings, *, link_paintings: bool, crops: int | None = None,
               map_side: int = MAP_SIDE, maps: bool = True, curves: bool = True) -> dict:
    """The template's data for one class, its pictures handed to *sink*."""
    from imagemachines.concepts.concept_maps import concept_overlay

    anchor = f"class-{slug(c.name)}"
    top = max((k.sobol for k in c.concepts), default=0.0) or 1.0
    view = {"name": c.name, "anchor": anchor, "n_images": len(c.paths), "candidates": c.candidates,
            "copies": sum(len(v) for v in c.copies.values()),
            "n_crops": int(len(c.crop_image)), "rule": c.rule, "r2": c.r2, "logit_share": c.curves.logit_share,
            "stability": c.stability.mean, "summary": c.summary(), "draws": c.curves.random_draws,
            "curves_src": (sink(f"curves/{slug(c.name)}.png", curves_figure(c.curves, c.name), "PNG")
                           if curves else None),
            "concepts": [], "files": {}}
    for k in c.concepts:
        entry = {"rank": k.rank, "bar": 100 * k.sobol / top, "sobol": k.sobol, "sobol_std": k.sobol_std,
                 "ablation": k.ablation, "ablation_std": k.ablation_std, "share": k.share,
                 "stable": k.stable_similarity, "render_value": k.render_value, "blown_up": k.blown_up,
                 "blown_up_class": k.blown_up_base, "resolution_warning": k.resolution_warning,
                 "best": k.crops[0].coefficient if k.crops else 0.0, "render_src": None, "crops": [], "paintings": []}
        base = f"{slug(c.name)}-{k.rank + 1:02d}"
        if k.render is not None:
            entry["render_src"] = sink(f"renders/{base}.png", k.render, "PNG")
        for i, crop in enumerate(k.crops[:crops] if crops else k.crops):
            painting = paintings.get(crop.path)
            if painting is None:
                continue
            short, title = caption(c.meta.get(crop.path, {}), crop.path)
            href = _painting_link(sink, painting, crop.path) if link_paintings else None
            entry["crops"].append({"src": sink(f"crops/{base}-{i:02d}.jpg", _fit(painting.crop(crop.box), CROP_SIDE,
                                                                                   upscale=True), "JPEG"),
                                   "href": href, "title": title, "caption": short, "coefficient": crop.coefficient,
                                   "path": crop.path})
        if maps:
            j = k.rank
            vmax = float(c.cell_coefficients[..., j].max())
            for i, ref in enumerate(k.paintings):
                painting = paintings.get(ref.path)
                if painting is None:
                    continue
                short, title = caption(c.meta.get(ref.path, {}), ref.path)
                overlay = concept_overlay(_fit(painting, map_side), c.cell_coefficients[ref.image, :, :, j], vmax)
                entry["paintings"].append({
                    "src": sink(f"maps/{base}-{i}.jpg", overlay, "JPEG"),
                    "href": _painting_link(sink, painting, ref.path) if link_paintings else None,
                    "title": title, "caption": short, "peak": ref.peak, "path": ref.path})
        view["concepts"].append(entry)
    return view


def _painting_link(sink: Sink, painting: Image.Image, path: str) -> str:
    name = f"paintings/{hashlib.sha256(path.encode()).hexdigest()[:16]}.jpg"
    return sink(name, _fit(painting, PAINTING_SIDE), "JPEG")


def _shared_view(shared, views: dict[str, dict]) -> list[dict]:
    out = []
    for s in shared:
        a, b = views[s.a], views[s.b]
        a_crops = a["concepts"][s.first]["crops"] if s.first < len(a["concepts"]) else []
        b_crops = b["concepts"][s.second]["crops"] if s.second < len(b["concepts"]) else []
        out.append({"a": s.a, "b": s.b, "first": s.first, "second": s.second, "similarity": s.similarity,
                    "a_anchor": f"{a['anchor']}-{s.first + 1}", "b_anchor": f"{b['anchor']}-{s.second + 1}",
                    "a_src": a_crops[0]["src"] if a_crops else None, "b_src": b_crops[0]["src"] if b_crops else None})
    return out


def write_study(study, out: Path, *, progress: bool = True) -> Path:
    """Write the output folder (see the module doc); returns the path of ``concepts.html``."""
    from tqdm.auto import tqdm

    from imagemachines.errors import UserError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder.")
    for name in FOLDERS:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*"):  # pictures of an earlier study in the same folder
            if old.is_file() and old.suffix in (".png", ".jpg"):
                old.unlink()
    sink = file_sink(out)
    paintings = _Paintings(study.root)
    views = {}
    for c in tqdm(study.classes.values(), desc="writing pages", unit="class", disable=not progress, leave=False):
        views[c.name] = class_view(c, sink, paintings, link_paintings=True)
    doc = study.as_dict()
    for name, view in views.items():  # the pictures each concept shows, for the page and for tools (atlas, server)
        for concept, entry in zip(doc["classes"][name]["concepts"], view["concepts"], strict=True):
            concept["files"] = {
                "render": entry["render_src"],
                "crops": [{"file": c["src"], "painting": c["href"], "path": c["path"], "coefficient": c["coefficient"]}
                          for c in entry["crops"]],
                "maps": [{"file": p["src"], "painting": p["href"], "path": p["path"], "peak": p["peak"]}
                         for p in entry["paintings"]]}
        doc["classes"][name]["files"] = {"curves": view["curves_src"]}
    doc = _finite(doc)
    write_tensors(study, out / "concepts.safetensors")
    atomic_write(out / "concepts.json", lambda tmp: tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8"))
    return write_page(doc, out / "concepts.html")


def write_page(doc: dict, path: Path, classes: Sequence[str] | None = None, *, template: str = "concepts.html",
               **context) -> Path:
    """``concepts.html`` (or another page extending it) from a study's ``concepts.json`` and the pictures beside
    it: the same page whoever writes it (the command, the atlas)."""
    from imagemachines.report import write_html

    views = class_views_from_json(doc)
    chosen = [v for v in views.values() if classes is None or v["name"] in classes]
    steps = min((v["summary"]["steps"] for v in chosen), default=3)
    return write_html(path, template, title=context.pop("title", f"What {doc['model']} uses for each class"),
                      doc=doc, classes=chosen, shared=_shared_view(_shared_from_json(doc), views) if classes is None
                      else [], threshold=THRESHOLD, steps=steps, **context)


def class_views_from_json(doc: dict) -> dict[str, dict]:
    """The template's data for every class of a ``concepts.json`` (pictures as the relative files it names)."""
    views = {}
    for name, c in doc["classes"].items():
        meta = {}
        for concept in c["concepts"]:
            for item in (*concept["crops"], *concept["paintings"]):
                meta[item["path"]] = item.get("metadata") or {}
        top = max((k["importance"]["sobol_total"] or 0.0 for k in c["concepts"]), default=0.0) or 1.0
        concepts = []
        for k in c["concepts"]:
            imp, files = k["importance"], k.get("files") or {"render": None, "crops": [], "maps": []}
            concepts.append({
                "rank": k["rank"], "bar": 100 * (imp["sobol_total"] or 0.0) / top, "sobol": imp["sobol_total"],
                "sobol_std": imp["sobol_total_std"], "ablation": imp["ablation"], "ablation_std": imp["ablation_std"],
                "share": k["share"], "stable": _nan(k["stability"]["similarity"]), "render_value": k["render_value"],
                "blown_up": k.get("blown_up", 0.0), "blown_up_class": k.get("blown_up_class", 0.0),
                "resolution_warning": bool(k.get("resolution_warning")),
                "best": k["best_crop_coefficient"] or 0.0, "render_src": files["render"],
                "crops": [{"src": f["file"], "href": f["painting"], "coefficient": f["coefficient"], "path": f["path"],
                           **dict(zip(("caption", "title"), caption(meta.get(f["path"], {}), f["path"]), strict=True))}
                          for f in files["crops"]],
                "paintings": [{"src": f["file"], "href": f["painting"], "peak": f["peak"], "path": f["path"],
                               **dict(zip(("caption", "title"), caption(meta.get(f["path"], {}), f["path"]),
                                          strict=True))}
                              for f in files["maps"]]})
        faith = c["faithfulness"]
        views[name] = {"name": name, "anchor": f"class-{slug(name)}", "n_images": c["n_images"],
                       "candidates": c["candidates"], "n_crops": c["n_crops"], "rule": c["rule"], "r2": c["r2"],
                       "copies": sum(len(v) for v in (c.get("left_out_copies") or {}).values()),
                       "logit_share": _nan(faith["logit_share"]), "stability": _nan(c["stability"]["mean"]),
                       "summary": c["summary"], "draws": faith["random_draws"],
                       "curves_src": (c.get("files") or {}).get("curves"), "concepts": concepts}
    return views


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _shared_from_json(doc: dict) -> list:
    from imagemachines.concepts.across import SharedConcept

    return [SharedConcept(s["class_a"], s["concept_a"], s["class_b"], s["concept_b"], s["similarity"])
            for s in doc.get("shared", [])]


def _finite(value):
    """NaN and infinities as null: concepts.json is strict JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_tensors(study, path: Path) -> None:
    """``concepts.safetensors``: per class ``NAME/W`` [k, C], ``NAME/U`` [n_crops, k], ``NAME/crop_image``,
    ``NAME/crop_box`` [n_crops, 4] and ``NAME/maps`` [n_images, h, w, k]; the metadata names classes and images."""
    import torch
    from safetensors.torch import save_file

    tensors = {}
    for name, c in study.classes.items():
        tensors[f"{name}/W"] = torch.from_numpy(np.ascontiguousarray(c.W, dtype=np.float32))
        tensors[f"{name}/U"] = torch.from_numpy(np.ascontiguousarray(c.crop_coefficients, dtype=np.float32))
        tensors[f"{name}/crop_image"] = torch.from_numpy(np.ascontiguousarray(c.crop_image, dtype=np.int64))
        tensors[f"{name}/crop_box"] = torch.from_numpy(np.ascontiguousarray(c.crop_box, dtype=np.int64))
        tensors[f"{name}/maps"] = c.cell_coefficients.float().contiguous()
    meta = {"format": "imagemachines-concepts", "model": study.model, "layer": study.layer,
            "classes": json.dumps({name: c.paths for name, c in study.classes.items()})}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def notebook_html(classes: Sequence, shared, *, title: str, crops: int = 8) -> str:
    """The concepts of *classes* as one HTML fragment with the pictures inline (for ``_repr_html_``)."""
    from imagemachines.report import render_html

    paintings = _Paintings(classes[0].root) if classes else None
    views = {c.name: class_view(c, inline_sink, paintings, link_paintings=False, crops=crops, map_side=INLINE_MAP_SIDE)
             for c in classes}
    steps = min((c.summary()["steps"] for c in classes), default=3)
    body = render_html("concepts_body.html", classes=list(views.values()), shared=_shared_view(shared, views),
                       threshold=THRESHOLD, steps=steps)
    return f"<div><h3>{_escape(title)}</h3>{body}</div>"


def _escape(text: str) -> str:
    from html import escape

    return escape(text)
