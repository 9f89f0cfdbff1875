"""The collection routes: indexes, a unit's examples, a painting's page, thumbnails and heat overlays, uploads.

Paintings are addressed by index id and image id only; the file behind them comes from the index's own table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from imagemachines.errors import UserError
from imagemachines.index.unit_notes import photo_line, unit_notes
from imagemachines.models import LOGITS, LoadedModel
from imagemachines.serve.collection import (
    ServedIndex,
    Workbench,
    default_layer,
    display_meta,
    rank_in_collection,
    tie_sentences,
)
from imagemachines.serve.collection_schemas import (
    ExampleOut,
    ExplainedOut,
    ImagePageOut,
    IndexLayerOut,
    IndexOut,
    Meta,
    PaintingLinks,
    PaintingOut,
    ReasonOut,
    SimilarOut,
    StatsOut,
    UnitExamplesOut,
    UnitHitOut,
    UnitNotesOut,
    UploadOut,
)
from imagemachines.serve.schemas import Problem
from imagemachines.serve.uploads import Upload, UploadStore, read_limited

ERRORS = {404: {"model": Problem}, 422: {"model": Problem}}
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "JPEG"}, **ERRORS}
IMMUTABLE = {"Cache-Control": "public, max-age=86400"}
Size = Annotated[int, Query(ge=16, le=1024, description="Longer side in pixels (rounded up to a cached size).")]
K = Annotated[int, Query(ge=1, le=256, description="How many.")]
ImageId = Annotated[int, PathParam(ge=0, le=2**62)]
Channel = Annotated[int, PathParam(ge=0, le=1_000_000)]
Ctx = Annotated[str | None, Query(max_length=200)]
Mode = Annotated[str, Query(max_length=100, description="Similar paintings by content, style, composition, or a "
                                                         "mix like content:0.5,style:0.5.")]


def folder_name(root) -> str:
    """The image folder's name, with its parent's when it is a generic one (``paintings/images``)."""
    generic = {"images", "img", "train", "val", "test", "data"}
    return f"{root.parent.name}/{root.name}" if root.name.lower() in generic and root.parent.name else root.name


def build_collection_router(indexes: Mapping[str, ServedIndex], models: Mapping[str, LoadedModel],
                            bench: Workbench, uploads: UploadStore) -> APIRouter:
    router = APIRouter(tags=["collections"])

    # -- lookups ------------------------------------------------------------------------------------------
    def served(index_id: str) -> ServedIndex:
        if index_id not in indexes:
            known = ", ".join(indexes) or "none (start the server with --index DIR)"
            raise HTTPException(404, f"No index {index_id!r} on this server. Indexes: {known}.")
        return indexes[index_id]

    def info(s: ServedIndex, image_id: int):
        try:
            return s.index.image(image_id)
        except (KeyError, IndexError, ValueError, UserError):
            raise HTTPException(404, f"Index {s.id!r} has no image {image_id} (it has {s.index.n_images}); "
                                     "image ids come from the examples and image routes.") from None

    def indexed_layer(s: ServedIndex, layer: str) -> None:
        if layer not in s.index.layers:
            raise HTTPException(404, f"Layer {layer!r} is not in index {s.id!r}; it has: "
                                     f"{', '.join(s.index.layers)}.")

    def unit_label(model: LoadedModel, layer: str, channel: int) -> str | None:
        return model.class_names[channel] if layer == LOGITS and model.class_names else None

    def explain_layer(model: LoadedModel, s: ServedIndex | None, layer: str | None) -> str:
        if layer is None:
            return default_layer(model, s.index if s else None)
        model.layer(layer)  # UserError with suggestions when unknown
        return layer

    def painting_links(s: ServedIndex, image_id: int, overlay: tuple[str, int] | None = None) -> PaintingLinks:
        base = f"/api/indexes/{s.id}/images/{image_id}"
        ov = f"{base}/overlay?layer={overlay[0]}&channel={overlay[1]}" if overlay else None
        return PaintingLinks(page=base, thumb=f"{base}/thumb", overlay=ov)

    def painting(s: ServedIndex, image_id: int, overlay: tuple[str, int] | None = None) -> PaintingOut:
        im = info(s, image_id)
        meta = dict(im.meta or {})
        return PaintingOut(image_id=image_id, path=im.path, width=im.width, height=im.height,
                           meta=Meta(**display_meta(meta)), metadata={k: str(v) for k, v in meta.items()},
                           links=painting_links(s, image_id, overlay))

    def hit_out(model: LoadedModel, s: ServedIndex | None, hit, overlay_base: str) -> UnitHitOut:
        indexed = s is not None and hit.layer in s.index.layers
        return UnitHitOut(
            layer=hit.layer, channel=hit.channel, label=unit_label(model, hit.layer, hit.channel), value=hit.value,
            percentile=hit.percentile, overlay=f"{overlay_base}?layer={hit.layer}&channel={hit.channel}",
            examples=f"/api/indexes/{s.id}/units/{hit.layer}/{hit.channel}" if indexed else None,
        )

    def reason_out(s: ServedIndex, r) -> ReasonOut:
        unit = (f"/api/indexes/{s.id}/units/{r.layer}/{r.channel}"
                if r.channel is not None and r.layer in s.index.layers else None)
        return ReasonOut(mode=r.mode, layer=r.layer, channel=r.channel, share=r.share, unit=unit)

    def similar_out(s: ServedIndex, pairs, neighbours=()) -> list[SimilarOut]:
        by_id = {n.image_id: n for n in neighbours}
        out = []
        for image_id, score in pairs:
            im = info(s, int(image_id))
            n = by_id.get(int(image_id))
            extra = {} if n is None else {"scores": n.scores, "reasons": [reason_out(s, r) for r in n.reasons],
                                          "copies": n.copies}
            out.append(SimilarOut(image_id=int(image_id), score=float(score), meta=Meta(**display_meta(im.meta or {})),
                                  links=painting_links(s, int(image_id)), **extra))
        return out

    def check_mode(mode: str) -> str:
        from imagemachines.index.similarity_vectors import parse_mode

        parse_mode(mode)  # a clear 422 for an unknown mode or a bad weight
        return mode

    def explain(model: LoadedModel, s: ServedIndex | None, key: tuple, image, layer: str, k: int, n_similar: int,
                overlay_base: str, image_id: int | None = None, mode: str = "content") -> dict:
        from imagemachines.index.similarity_vectors import MODES

        index = s.index if s is not None and layer in s.index.layers else None
        explanation = bench.explain(model, key, image, layer, index, n_similar if index else 0, exclude=image_id,
                                    mode=mode)
        by_value, by_percentile = rank_in_collection(explanation, index, k)
        similar = similar_out(s, explanation.similar, explanation.neighbours) if index is not None else []
        layers = [li.name for li in model.layers()]
        modes = list(MODES) if s is not None and "similarity" in s.index.manifest else []
        return dict(model=model.name, index=s.id if s else None, layer=layer, layers=layers,
                    units=[hit_out(model, s, h, overlay_base) for h in by_value],
                    by_percentile=[hit_out(model, s, h, overlay_base) for h in by_percentile], similar=similar,
                    similar_basis=explanation.similar_basis if similar else None, ranked_at=explanation.ranked_at,
                    clamp=explanation.clamp, ties=tie_sentences(explanation, by_value, by_percentile),
                    mode=explanation.mode, modes=modes, same_painting=list(explanation.same_painting))

    def jpeg(data: bytes) -> Response:
        return Response(data, media_type="image/jpeg", headers=IMMUTABLE)

    # -- indexes and units --------------------------------------------------------------------------------
    @router.get("/api/indexes", response_model=list[IndexOut])
    def list_indexes() -> list[IndexOut]:
        """The collection indexes this server offers (start it with `--index DIR`)."""
        out = []
        for s in indexes.values():
            idx = s.index
            layers = [IndexLayerOut(name=n, channels=s.model.layer(n).channels,
                                    border_units=None if idx.note else idx.border_units(n)) for n in idx.layers]
            out.append(IndexOut(id=s.id, model=s.model.name, weights_id=idx.weights_id,
                                folder=folder_name(idx.image_root), n_images=idx.n_images, k=idx.k,
                                pooled=bool(idx.manifest.get("pooled", True)), ranking=idx.ranking, note=idx.note,
                                layers=layers))
        return out

    @router.get("/api/indexes/{index_id}/units/{layer}/{channel}", response_model=UnitExamplesOut,
                responses=ERRORS)
    def unit_examples(index_id: str, layer: str, channel: Channel, k: K = 12,
                      negative: Annotated[bool, Query(description="The bottom-k instead of the top-k.")] = False,
                      ) -> UnitExamplesOut:
        """The paintings that drive a unit most (or least), with metadata, the photograph's size and source, and
        thumbnail and heat-overlay URLs; `notes` say how they were ranked, whether the unit is a border unit and
        which metadata values its top (or bottom) k paintings of the index over-represent."""
        s = served(index_id)
        indexed_layer(s, layer)
        channels = s.model.layer(layer).channels
        if channel >= channels:
            raise HTTPException(404, f"Layer {layer!r} has {channels} units; {channel} is out of range "
                                     f"(0 to {channels - 1}).")
        examples = []
        for ex in s.index.examples(layer, channel, k=k, negative=negative):
            p = painting(s, int(ex.image_id), (layer, channel))
            examples.append(ExampleOut(**p.model_dump(), rank=ex.rank, value=float(ex.value),
                                       percentile=float(ex.percentile), cell=tuple(int(v) for v in ex.cell),
                                       box=tuple(int(v) for v in ex.box), on_border=ex.on_border,
                                       photo=photo_line(info(s, int(ex.image_id)))))
        notes = unit_notes(s.index, layer, channel, negative=negative).as_dict()
        st = s.index.stats(layer, channel)
        stats = StatsOut(mean=st.mean, std=st.std, min=st.min, max=st.max,
                         quantiles={f"{q:g}": float(v) for q, v in st.quantiles.items()})
        return UnitExamplesOut(index=s.id, model=s.model.name, layer=layer, channel=channel,
                               label=unit_label(s.model, layer, channel), negative=negative, stats=stats,
                               notes=UnitNotesOut(**notes), examples=examples)

    # -- paintings of an index ----------------------------------------------------------------------------
    @router.get("/api/indexes/{index_id}/images/{image_id}", response_model=ImagePageOut, responses=ERRORS)
    def image_page(index_id: str, image_id: ImageId, layer: Annotated[str | None, Query(max_length=200)] = None,
                   k: K = 12, similar: Annotated[int, Query(ge=0, le=100)] = 12,
                   mode: Mode = "content") -> ImagePageOut:
        """A painting: its metadata, the units it drives most (at `layer`) and the most similar paintings (by
        `mode`: content, style, composition or a mix), each with why it is close."""
        check_mode(mode)
        s = served(index_id)
        p = painting(s, image_id)
        lay = explain_layer(s.model, s, layer)
        image = bench.indexed_image(s, image_id)
        body = explain(s.model, s, ("index", s.id, image_id), image, lay, k, similar, f"{p.links.page}/overlay",
                       image_id=image_id, mode=mode)
        return ImagePageOut(painting=p, **body)

    @router.get("/api/indexes/{index_id}/images/{image_id}/thumb", responses=JPEG)
    def image_thumb(index_id: str, image_id: ImageId, size: Size = 256) -> Response:
        """The painting as a JPEG of longer side `size`."""
        s = served(index_id)
        info(s, image_id)
        return jpeg(bench.thumbnail(("index", s.id, image_id), bench.indexed_image(s, image_id), size))

    @router.get("/api/indexes/{index_id}/images/{image_id}/overlay", responses=JPEG)
    def image_overlay(index_id: str, image_id: ImageId, layer: Annotated[str, Query(max_length=200)],
                      channel: Annotated[int, Query(ge=0, le=1_000_000)], size: Size = 256) -> Response:
        """The painting with a unit's activation map over it (colour scale: the unit's maximum in the index)."""
        s = served(index_id)
        info(s, image_id)
        s.model.check_channel(layer, channel)
        vmax = float(s.index.stats(layer, channel).max) if layer in s.index.layers else None
        return jpeg(bench.overlay(s.model, ("index", s.id, image_id), bench.indexed_image(s, image_id), layer,
                                  channel, size, vmax, s.index.ranking))

    # -- uploads ------------------------------------------------------------------------------------------
    def upload_context(index: str | None, model: str | None) -> tuple[LoadedModel, ServedIndex | None]:
        s = served(index) if index else None
        if s is not None:
            if model and model != s.model.name:
                raise HTTPException(422, f"Index {s.id!r} belongs to model {s.model.name!r}, not {model!r}.")
            return s.model, s
        name = model or next(iter(models))
        if name not in models:
            raise HTTPException(404, f"This server does not serve model {name!r}; it serves {', '.join(models)}.")
        return models[name], None

    def explain_upload(up: Upload, index: str | None, model: str | None, layer: str | None, k: int,
                       similar: int, mode: str = "content") -> UploadOut:
        m, s = upload_context(index, model)
        lay = explain_layer(m, s, layer)
        body = explain(m, s, ("upload", up.id), up.image, lay, k, similar, f"/api/uploads/{up.id}/overlay",
                       mode=mode)
        for hit in (*body["units"], *body["by_percentile"]):  # overlays need the context, too
            hit.overlay += f"&model={m.name}" + (f"&index={s.id}" if s else "")
        return UploadOut(id=up.id, width=up.width, height=up.height, format=up.format,
                         image=f"/api/uploads/{up.id}/image", **body)

    # read_limited() answers 413 with a JSON reason at max_bytes; the framework's limit, 1 MiB above it, is the backstop
    @router.post("/api/uploads", response_model=UploadOut, max_body_size=uploads.limits.max_bytes + 2**20, responses={
        **ERRORS, 413: {"model": Problem, "description": "Too many bytes or pixels."},
        415: {"model": Problem, "description": "Not an image."}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def upload(request: Request, index: Ctx = None, model: Ctx = None, layer: Ctx = None, k: K = 12,
                     similar: Annotated[int, Query(ge=0, le=100)] = 12, mode: Mode = "content") -> UploadOut:
        """Explain your own painting: send the image file as the request body. Returns the units it drives most
        (with heat overlays) and, with an `index`, their percentiles and the collection's most similar paintings.
        The upload is kept only in a small memory cache (never on disk)."""
        upload_context(index, model)  # a 404 before reading the body
        check_mode(mode)
        data = await read_limited(request, uploads.limits.max_bytes)
        up = await run_in_threadpool(uploads.add, data)
        return await run_in_threadpool(explain_upload, up, index, model, layer, k, similar, mode)

    @router.get("/api/uploads/{upload_id}", response_model=UploadOut, responses=ERRORS)
    def upload_again(upload_id: str, index: Ctx = None, model: Ctx = None, layer: Ctx = None, k: K = 12,
                     similar: Annotated[int, Query(ge=0, le=100)] = 12, mode: Mode = "content") -> UploadOut:
        """An upload explained again (another layer, index or similarity mode) while it is still in the cache."""
        check_mode(mode)
        return explain_upload(uploads.get(upload_id), index, model, layer, k, similar, mode)

    @router.get("/api/uploads/{upload_id}/image", responses=JPEG)
    def upload_image(upload_id: str, size: Size = 768) -> Response:
        up = uploads.get(upload_id)
        return jpeg(bench.thumbnail(("upload", up.id), up.image, size))

    @router.get("/api/uploads/{upload_id}/overlay", responses=JPEG)
    def upload_overlay(upload_id: str, layer: Annotated[str, Query(max_length=200)],
                       channel: Annotated[int, Query(ge=0, le=1_000_000)], size: Size = 768,
                       index: Ctx = None, model: Ctx = None) -> Response:
        up = uploads.get(upload_id)
        m, s = upload_context(index, model)
        m.check_channel(layer, channel)
        vmax = float(s.index.stats(layer, channel).max) if s is not None and layer in s.index.layers else None
        ranking = s.index.ranking if s is not None else "full"
        return jpeg(bench.overlay(m, ("upload", up.id), up.image, layer, channel, size, vmax, ranking))

    return router


__all__ = ["ExplainedOut", "build_collection_router"]
