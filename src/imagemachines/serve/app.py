"""``create_app``: the FastAPI application (API, web interface, error handling, CORS, lifespan)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from imagemachines import __version__
from imagemachines.errors import UserError
from imagemachines.models import LoadedModel
from imagemachines.serve.accentuate_api import build_accentuate_router
from imagemachines.serve.api import build_router, problem_status
from imagemachines.serve.cache import RenderCache
from imagemachines.serve.collection import Workbench, match_indexes
from imagemachines.serve.collection_api import build_collection_router
from imagemachines.serve.concept_jobs import ConceptJobs
from imagemachines.serve.concepts_api import build_concepts_router
from imagemachines.serve.guard import LOOPBACK_HOSTS, RequestGuard, open_to_other_sites, refuse_cross_site
from imagemachines.serve.headers import SecurityHeaders
from imagemachines.serve.map_api import build_map_router
from imagemachines.serve.resolve import Catalog
from imagemachines.serve.scheduler import Scheduler
from imagemachines.serve.schemas import Limits
from imagemachines.serve.uploads import UploadLimits, UploadStore

FRAMEWORK_413 = {"Content Too Large", "Request Entity Too Large"}

STATIC = Path(__file__).resolve().parent / "static"


UPLOAD_SWEEP_SECONDS = 60.0  # how often expired uploads are dropped when nobody asks for any


async def _sweep(purge: Callable[[], object], every: float) -> None:
    while True:
        await asyncio.sleep(every)
        purge()


MAX_ERRORS = 5  # validation problems listed in a 422; the rest are counted


def _short(text: object, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact_errors(errors: Sequence[dict]) -> list[dict]:
    """The first few pydantic errors as location, message and type only: never the input (which may be huge,
    or NaN, which JSON cannot encode), never the context."""
    return [{"loc": [_short(p) for p in err.get("loc", ())][:8], "msg": _short(err.get("msg", "invalid"), 200),
             "type": _short(err.get("type", ""))} for err in errors[:MAX_ERRORS]]


def fault_of(status: int) -> str:
    """Whose fault an error answer is (the ``fault`` of every error body): ``busy`` for 429 and 503 (try again after
    Retry-After), ``server`` for other 5xx, else ``request``."""
    return "busy" if status in (429, 503) else "server" if status >= 500 else "request"


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None, **extra) -> JSONResponse:
    """An error answer: ``{"detail": ..., "fault": ...}``."""
    return JSONResponse({"detail": detail, "fault": fault_of(status), **extra}, status_code=status, headers=headers)


def _readable(errors: Sequence[dict], total: int) -> str:
    """Pydantic errors as one sentence per problem: 'size: Input should be less than or equal to 1024.'"""
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {err['msg']}")
    more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
    return "; ".join(parts) + more + ". See /docs for the expected format."


def create_app(
    models: Mapping[str, LoadedModel],
    *,
    cache_dir: Path,
    allow_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
    limits: Limits = Limits(),
    render_fn: Callable | None = None,
    batch_window: float = 0.02,
    indexes: Sequence = (),
    upload_limits: UploadLimits = UploadLimits(),
) -> FastAPI:
    """The web service for *models* (name -> loaded model; the first is the default).

    *allowed_hosts* are the Host names answered (``"*"``: any); *render_fn* defaults to
    :func:`imagemachines.vis.render`; tests wrap it to count engine calls.
    *indexes* are opened collection indexes (:func:`imagemachines.index.open_index`); each must have been made
    with the weights of a served model.
    """
    from imagemachines.vis import METHODS, method_defaults

    if not models:
        raise UserError("Give at least one model to serve.")
    for model in models.values():
        model.layers()  # the layer table's dry run, now, before the worker thread uses the model
    catalog = Catalog(models=dict(models), methods={m: method_defaults(m) for m in METHODS}, limits=limits,
                      default_model=next(iter(models)))
    served_indexes = match_indexes(indexes, models)
    cache = RenderCache(cache_dir, max_bytes=limits.max_cache_bytes)
    scheduler = Scheduler(catalog.models, cache, limits=limits, render_fn=render_fn, batch_window=batch_window)
    concept_jobs = ConceptJobs(Path(cache_dir) / "concepts", max_bytes=limits.max_cache_bytes)  # concept studies

    bench = Workbench()
    uploads = UploadStore(upload_limits, forget=lambda upload: bench.forget(("upload", upload)))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        scheduler.open()
        sweeper = asyncio.create_task(_sweep(uploads.purge, UPLOAD_SWEEP_SECONDS))  # expired uploads go unasked
        yield
        sweeper.cancel()
        scheduler.close()
        concept_jobs.close()

    app = FastAPI(
        title="imagemachines", version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,  # /docs comes from the package below
        dependencies=[Depends(refuse_cross_site)],  # every route, also those of routers included later (guard.py)
        max_body_size=limits.max_body,  # every route; an upload route raises it with its own max_body_size=
        description="Feature visualization of image-recognition networks as a local web service. "
                    "The web interface is at `/`.",
    )
    app.state.catalog, app.state.scheduler, app.state.uploads, app.state.workbench = catalog, scheduler, uploads, bench
    app.state.concept_jobs = concept_jobs
    if allow_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(allow_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Content-Type"], expose_headers=["Retry-After", "X-Render-State"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no page {request.url.path!r}. The API is described at /docs; the interface is at /."
        elif exc.status_code == 413 and detail in FRAMEWORK_413:  # the framework's limit, not a route's own reason
            limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
            detail = (f"The request body is larger than this route accepts ({limit:,} bytes). Send less; see /docs "
                      "for the expected format." if isinstance(limit, int) else "The request body is too large.")
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path!r}; see /docs for what is."
        return problem(exc.status_code, detail, exc.headers)

    @app.exception_handler(UserError)
    async def user_error(_request: Request, exc: UserError) -> JSONResponse:
        return problem(problem_status(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        every = exc.errors()
        errors = compact_errors(every)
        return problem(422, _readable(errors, len(every)), errors=errors)

    @app.exception_handler(Exception)
    async def crashed(_request: Request, exc: Exception) -> JSONResponse:  # a bug: logged by the server, re-raised
        return problem(500, f"The server failed to answer ({type(exc).__name__}). This is a fault of the server, "
                            "not of the request: try again, and report it if it keeps failing.")

    app.include_router(build_router(catalog, scheduler))
    app.include_router(build_collection_router(served_indexes, catalog.models, bench, uploads))
    app.include_router(build_map_router(served_indexes, cache_dir))
    app.include_router(build_accentuate_router(catalog, scheduler, served_indexes, bench, uploads))
    app.include_router(build_concepts_router(served_indexes, concept_jobs))

    @app.get("/", include_in_schema=False)
    @open_to_other_sites  # a link on another site may open the interface (it starts nothing large by itself)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    @open_to_other_sites
    def api_docs() -> FileResponse:
        """Swagger UI, served from the package (works offline; no inline script, so it passes the CSP)."""
        return FileResponse(STATIC / "docs.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(RequestGuard, allowed_hosts=tuple(allowed_hosts), allow_origins=tuple(allow_origins))
    app.add_middleware(SecurityHeaders)  # outermost: the guard's refusals carry the headers too
    return app
