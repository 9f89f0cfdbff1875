"""The render loop of an atlas: the plan's batches for this rank through :func:`imagemachines.vis.render`,
each finished image written and recorded at once, then (rank 0) the pages and the manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imagemachines.atlas.images import FORMATS, save_image
from imagemachines.atlas.plan import Job, plan_jobs, shard
from imagemachines.atlas.state import AtlasState, ImageKey
from imagemachines.errors import UserError
from imagemachines.models import LOGITS
from imagemachines.models.loaded import LoadedModel
from imagemachines.train.distributed import Dist, barrier
from imagemachines.vis.recipes import ClassicRecipe, make_recipe

MAX_CHANNELS = 1 << 16  # --channels ranges are read up to this, then clipped per layer


@dataclass
class AtlasSettings:
    """What to render: layers (None: every block layer but the logits), channels (``all``, ``0-15``…, taken
    per layer and clipped to its size), methods, seeds, and the recipe's size and steps (method defaults)."""

    layers: Sequence[str] | None = None
    channels: str = "all"
    methods: Sequence[str] = ("lucid",)
    seeds: Sequence[int] = (0,)
    size: int | None = None
    steps: int | None = None
    image_format: str = "webp"
    batch: int | None = None
    force: bool = False
    serve_url: str = "http://127.0.0.1:8000"
    index: Path | None = None
    concepts: Path | None = None  # a folder written by `imagemachines concepts`
    map: bool = False
    options: dict = field(default_factory=dict)


@dataclass
class BuildResult:
    """What a run did: the site's front page, images rendered now, images found done and skipped."""

    index_html: Path | None
    rendered: int
    skipped: int


def model_slug(model: LoadedModel) -> str:
    return Path(model.name).name


def pick_units(model: LoadedModel, settings: AtlasSettings) -> dict[str, list[int]]:
    """Layer name -> channels to render."""
    from imagemachines.vis.units import parse_channels

    names = list(settings.layers) if settings.layers else [
        info.name for info in model.layers() if info.name != LOGITS]
    out = {}
    for name in names:
        info = model.layer(name)
        spec = settings.channels.strip().lower()
        channels = range(info.channels) if spec == "all" else parse_channels(spec, MAX_CHANNELS)
        out[name] = [c for c in channels if c < info.channels]
        if not out[name]:
            raise UserError(f"Layer {name!r} has {info.channels} channels, none of them in --channels "
                            f"{settings.channels!r}.")
    return out


def recipes(settings: AtlasSettings) -> dict[str, dict]:
    """Method -> its resolved size and steps (octaves too for classic): what must match to resume."""
    out = {}
    for method in settings.methods:
        recipe = make_recipe(method, settings.size, settings.steps, **settings.options)
        out[method] = {"size": recipe.size, "steps": recipe.steps,
                       **({"octaves": recipe.octaves} if isinstance(recipe, ClassicRecipe) else {})}
    return out


def default_batch(model: LoadedModel, settings: AtlasSettings) -> int:
    from imagemachines.vis.cli import default_batch as batch_for

    size = max(r["size"] for r in recipes(settings).values())
    return settings.batch or batch_for(model.device.type, size)


def build_atlas(model: LoadedModel, out: Path, settings: AtlasSettings | None = None, *,
                dist: Dist | None = None, progress: bool = True) -> BuildResult:
    """Render every planned image not yet in *out* (all with ``force``) and write the site (on rank 0).

    With *dist* (a torchrun job) each rank renders its share of the batches; all ranks must call this.
    """
    settings = settings or AtlasSettings()
    dist = dist or Dist()
    if settings.image_format not in FORMATS:
        raise UserError(f"Unknown image format {settings.image_format!r}: use webp or png.")
    state = AtlasState(out, model_slug(model), settings.image_format)
    stored = {"model": model.name, "weights_id": model.weights_id, "format": settings.image_format,
              "recipes": recipes(settings)}
    units = pick_units(model, settings)
    index = _open_index(settings.index, model)
    concepts = _read_concepts(settings.concepts, model)
    if settings.map and index is None:
        raise UserError("--map needs --index: the map is of a collection index's paintings.")
    if settings.map:
        from imagemachines.collection_map.view import open_map

        open_map(index)  # no map yet: say so before any render
    state.check_settings(stored)  # every rank reads the same file, so every rank refuses together
    barrier(dist)
    if dist.main:
        state.write_settings(stored)
    barrier(dist)
    jobs = plan_jobs(units, list(settings.methods), list(settings.seeds), default_batch(model, settings))
    mine = shard(jobs, dist.rank, dist.world)
    rendered, skipped = _render_jobs(model, state, mine, settings, progress and dist.main)
    barrier(dist)
    page = None
    if dist.main:
        from imagemachines.atlas.site import write_site

        if settings.map:
            _write_map(state, index, units, progress)
        page = write_site(state, model, settings, index=index, concepts=concepts, progress=progress)
    barrier(dist)
    return BuildResult(page, rendered, skipped)


def _read_concepts(path: Path | None, model: LoadedModel) -> dict | None:
    if path is None:
        return None
    from imagemachines.atlas.concepts import read_matching_study

    return read_matching_study(path, model)


def _open_index(path: Path | None, model: LoadedModel):
    if path is None:
        return None
    from imagemachines.atlas.examples import open_matching_index

    return open_matching_index(path, model)


def _write_map(state: AtlasState, index, units: dict[str, list[int]], progress: bool) -> None:
    """``MODEL/map/map.html``: the index's map, its cluster units linked to their pages when the atlas has them."""
    from imagemachines.collection_map.page import write_map_page

    def href(layer: str, channel: int) -> str | None:
        return f"../{layer}/{channel}.html" if channel in units.get(layer, ()) else None

    write_map_page(index, None, state.root / "map", unit_href=href, file_links=False, back="../index.html",
                   progress=progress)


def _render_jobs(model: LoadedModel, state: AtlasState, jobs: list[Job], settings: AtlasSettings,
                 progress: bool) -> tuple[int, int]:
    from tqdm.auto import tqdm

    from imagemachines.vis.engine import render
    from imagemachines.vis.units import Unit

    todo: list[tuple[Job, list[int]]] = []
    skipped = 0
    for job in jobs:
        channels = [c for c in job.channels if settings.force or not state.done(ImageKey(
            job.layer, c, job.method, job.seed))]
        skipped += len(job.channels) - len(channels)
        if channels:
            todo.append((job, channels))
    total = sum(len(c) for _, c in todo)
    bar = tqdm(total=total, unit="unit", desc=f"atlas {model_slug(model)}", disable=not progress)
    rendered = 0
    for job, channels in todo:
        bar.set_postfix_str(f"{job.layer} {job.method} seed {job.seed}")
        renders = render(model, [Unit(job.layer, c) for c in channels], method=job.method, size=settings.size,
                         steps=settings.steps, seed=job.seed, **settings.options)
        for channel, r in zip(channels, renders, strict=True):
            key = ImageKey(job.layer, channel, job.method, job.seed)
            save_image(r.image, r.recipe, state.image_path(key))
            state.write_record(key, r.recipe)
            rendered += 1
        bar.update(len(channels))
    bar.close()
    return rendered, skipped
