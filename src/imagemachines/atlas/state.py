"""What an atlas folder already holds: its settings (checked before anything is rendered) and one record per
finished image (written atomically after the image, so a record always means a complete image).

Layout of one model in a site folder::

    SITE/<model>/settings.json                      model, weights, format, size and steps per method
    SITE/<model>/<layer>/img/<channel>-<method>-s<seed>.<png|webp>
    SITE/<model>/<layer>/img/<channel>-<method>-s<seed>.json    the record: the image's full recipe
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from imagemachines.errors import UserError
from imagemachines.fileio import atomic_write

SETTINGS = "settings.json"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


class AtlasMismatch(UserError):
    """The folder holds an atlas made with other weights or settings."""


def safe_name(name: str, what: str) -> str:
    """*name* as one path component; a clear error for anything that could leave the folder."""
    if not _SAFE.match(name) or name in (".", ".."):
        raise UserError(f"Cannot use {what} {name!r} as a folder name in the atlas (letters, digits, _ . - only).")
    return name


@dataclass(frozen=True)
class ImageKey:
    """One image of the atlas."""

    layer: str
    channel: int
    method: str
    seed: int

    @property
    def stem(self) -> str:
        return f"{self.channel}-{self.method}-s{self.seed}"


class AtlasState:
    """The folder of one model in a site: paths, the settings check, and which images are done."""

    def __init__(self, site: Path, model: str, image_format: str):
        self.site = Path(site)
        self.model = safe_name(model, "model")
        self.root = self.site / self.model
        self.format = image_format

    def image_path(self, key: ImageKey) -> Path:
        return self.root / safe_name(key.layer, "layer") / "img" / f"{key.stem}.{self.format}"

    def record_path(self, key: ImageKey) -> Path:
        return self.image_path(key).with_suffix(".json")

    def done(self, key: ImageKey) -> bool:
        return self.record_path(key).is_file() and self.image_path(key).is_file()

    def record(self, key: ImageKey) -> dict:
        return json.loads(self.record_path(key).read_text(encoding="utf-8"))

    def write_record(self, key: ImageKey, recipe: dict) -> None:
        """Record *key* as finished (call after its image is written)."""
        text = json.dumps(recipe, indent=1, sort_keys=True) + "\n"
        atomic_write(self.record_path(key), lambda tmp: tmp.write_text(text, encoding="utf-8"))

    # -- settings -------------------------------------------------------------------------------------------
    @property
    def settings_path(self) -> Path:
        return self.root / SETTINGS

    def read_settings(self) -> dict | None:
        if not self.settings_path.is_file():
            return None
        try:
            return json.loads(self.settings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.settings_path} is unreadable ({exc}); remove it or choose another --out.") from exc

    def check_settings(self, settings: dict) -> None:
        """Refuse to mix: same model, weights and format, and the same size and steps for a method already there."""
        old = self.read_settings()
        if old is None:
            return
        for key in ("model", "weights_id", "format"):
            if old.get(key) != settings.get(key):
                raise AtlasMismatch(
                    f"{self.root} holds an atlas with {key} {old.get(key)!r}, not {settings.get(key)!r}: "
                    "choose another --out (or delete that folder) instead of mixing two atlases.")
        for method, recipe in settings["recipes"].items():
            before = old.get("recipes", {}).get(method)
            if before is not None and before != recipe:
                raise AtlasMismatch(
                    f"{self.root} holds {method} images made with {before}, not {recipe}: use the same --size and "
                    "--steps, or another --out.")

    def merged_settings(self, settings: dict) -> dict:
        """The settings to store: the old ones plus any method this run adds."""
        old = self.read_settings() or {}
        return {**settings, "recipes": {**old.get("recipes", {}), **settings["recipes"]}}

    def write_settings(self, settings: dict) -> None:
        text = json.dumps(self.merged_settings(settings), indent=2, sort_keys=True) + "\n"
        atomic_write(self.settings_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def records(self) -> list[tuple[ImageKey, dict]]:
        """Every finished image of this model (whatever run made it), in layer folder / channel order."""
        out = []
        for path in sorted(self.root.glob("*/img/*.json")):
            m = re.match(r"^(\d+)-([a-z]+)-s(\d+)$", path.stem)
            if not m:
                continue
            key = ImageKey(path.parent.parent.name, int(m[1]), m[2], int(m[3]))
            if self.image_path(key).is_file():
                out.append((key, json.loads(path.read_text(encoding="utf-8"))))
        return out
