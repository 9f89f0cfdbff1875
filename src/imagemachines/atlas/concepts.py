"""``atlas --concepts DIR``: a concept study (``imagemachines concepts --out DIR``) as pages of the atlas.

The study's pictures and ``concepts.json`` are copied to ``<model>/concepts/``, every class gets its own page
(``<model>/concepts/<class>.html``, the same content as its section of ``concepts.html``), an overview page holds
every class and the concepts they share, and the model page links them. A study made with other weights than the
atlas's model is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from imagemachines.errors import UserError
from imagemachines.models.loaded import LoadedModel

FOLDER = "concepts"


def read_matching_study(folder: Path, model: LoadedModel) -> dict:
    """The study in *folder*, checked to be of *model*'s weights."""
    from imagemachines.concepts.store import read_study

    doc = read_study(folder)
    if doc.get("weights_id") != model.weights_id:
        ref = model.location or model.name
        raise UserError(f"The concept study in {folder} was made with {doc.get('model')} weights "
                        f"{doc.get('weights_id')!r}, not with this atlas's {model.name} ({model.weights_id}). Give a "
                        f"study of the same model, or make one with `imagemachines concepts {ref} IMAGE_DIR`.")
    return doc


def write_concepts(root: Path, folder: Path, doc: dict, model_name: str) -> list[dict]:
    """Copy the study into ``root/concepts/`` and write its pages; the class rows of the model page."""
    from imagemachines.concepts.page import FOLDERS, slug, write_page

    target = Path(root) / FOLDER
    for name in FOLDERS:
        shutil.rmtree(target / name, ignore_errors=True)
        if (Path(folder) / name).is_dir():
            shutil.copytree(Path(folder) / name, target / name)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(folder) / "concepts.json", target / "concepts.json")
    for old in target.glob("*.html"):  # the pages of an earlier study
        old.unlink()
    common = {"template": "atlas_concepts.html", "model": model_name}
    write_page(doc, target / "index.html", title=f"{model_name}: concepts of each class", **common)
    rows = []
    for name, c in doc["classes"].items():
        page = f"{slug(name)}.html"
        write_page(doc, target / page, [name], title=f"{model_name}: concepts of {name}", **common)
        renders = [k["files"]["render"] for k in c["concepts"][:4] if (k.get("files") or {}).get("render")]
        rows.append({"name": name, "page": f"{FOLDER}/{page}", "n_images": c["n_images"], "summary": c["summary"],
                     "renders": [f"{FOLDER}/{r}" for r in renders], "k": len(c["concepts"])})
    return rows
