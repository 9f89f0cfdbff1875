"""``create_app``: the FastAPI application (API, web interface, error handling, CORS, lifespan)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagemachines import __version__
from imagemachines.errors import UnknownLayer, UnknownModel, UserError
from imagemachines.models import LoadedModel
from imagemachines.serve.api import build_router
from imagemachines.serve.cache import RenderCache
from imagemachines.serve.resolve import Catalog
from imagemachines.serve.scheduler import Scheduler
from imagemachines.serve.schemas import Limits

STATIC = Path(__file__).resolve().parent / "static"


def _readable(errors: Sequence[dict]) -> str:
    """Pydantic errors as one sentence per problem: 'size: Input should be less than or equal to 1024.'"""
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more + ". See /docs for the expected format."


def create_app(
    models: Mapping[str, LoadedModel],
    *,
    cache_dir: Path,
    allow_origins: Sequence[str] = (),
    limits: Limits = Limits(),
    render_fn: Callable | None = None,
    batch_window: float = 0.02,
) -> FastAPI:
    """The web service for *models* (name -> loaded model; the first is the default).

    *render_fn* defaults to :func:`imagemachines.vis.render`; tests wrap it to count engine calls.
    """
    from imagemachines.vis import METHODS, method_defaults

    if not models:
        raise UserError("Give at least one model to serve.")
    for model in models.values():
        model.layers()  # the layer table's dry run, now, before the worker thread uses the model
    catalog = Catalog(models=dict(models), methods={m: method_defaults(m) for m in METHODS}, limits=limits,
                      default_model=next(iter(models)))
    scheduler = Scheduler(catalog.models, RenderCache(cache_dir), limits=limits, render_fn=render_fn,
                          batch_window=batch_window)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        scheduler.open()
        yield
        scheduler.close()

    app = FastAPI(
        title="imagemachines", version=__version__, lifespan=lifespan,
        description="Feature visualization of image-recognition networks as a local web service. "
                    "The web interface is at `/`.",
    )
    app.state.catalog, app.state.scheduler = catalog, scheduler
    if allow_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(allow_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Content-Type"], expose_headers=["Retry-After", "X-Render-State"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no page {request.url.path!r}. The API is described at /docs; the interface is at /."
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path!r}; see /docs for what is."
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(UserError)
    async def user_error(_request: Request, exc: UserError) -> JSONResponse:
        missing = isinstance(exc, (UnknownModel, UnknownLayer))  # a well-formed request naming what is not here
        return JSONResponse({"detail": str(exc)}, status_code=404 if missing else 422)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), custom_encoder={Exception: str, bytes: repr})
        return JSONResponse({"detail": _readable(errors), "errors": errors}, status_code=422)

    app.include_router(build_router(catalog, scheduler))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
