"""Reading a concept study back from its folder (``concepts.json``), for the atlas and the server."""

from __future__ import annotations

import json
from pathlib import Path

from imagemachines.errors import UserError

FORMAT = "imagemachines-concepts"


def read_study(folder: Path) -> dict:
    """The ``concepts.json`` of a folder written by ``imagemachines concepts`` (checked to be one)."""
    path = Path(folder).expanduser() / "concepts.json"
    if not path.is_file():
        raise UserError(f"{folder} holds no concept study (concepts.json is missing). Make one with "
                        "`imagemachines concepts MODEL IMAGE_DIR --out FOLDER`.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} cannot be read ({exc}); run `imagemachines concepts` again.") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("classes"), dict):
        raise UserError(f"{path} is not a concept study written by `imagemachines concepts`.")
    return doc
