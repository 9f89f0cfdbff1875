"""Request and response bodies of the REST API (pydantic), and the server's limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["queued", "running", "done", "failed", "cancelled"]
Fault = Literal["request", "server", "busy"]
FAULT_HELP = ("Whose fault a failure is: `request` (change the request as the detail says), `server` (a fault of the "
              "server; the same request may work when tried again), `busy` (try again after Retry-After).")
TERMINAL = ("done", "failed", "cancelled")
ID_PATTERN = r"^[0-9a-f]{32}$"
MAX_INDEX = 1_000_000  # no real layer has more channels, classes or positions than this
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Limits:
    """What one server accepts; requests beyond these get a 4xx that names the limit."""

    min_size: int = 16
    max_size: int = 1024
    max_steps: int = 4096
    max_batch: int = 16  # units per engine call
    max_batch_pixels: int = 16 * 256 * 256  # units x size^2 per engine call (bounds device memory)
    max_queue: int = 128  # requests waiting (not running); more get 429 + Retry-After
    max_jobs: int = 4096  # finished render records kept in memory (the PNGs live on disk)
    max_streams: int = 32  # open server-sent event streams; more get 503 + Retry-After
    max_body: int = 64 * 1024  # request body bytes, for routes that declare no limit of their own
    max_cache_bytes: int = 2 * 1024**3  # the render cache on disk; least recently used renders go first

    def batch_for(self, size: int) -> int:
        """How many units of side *size* one engine call may render."""
        return max(1, min(self.max_batch, self.max_batch_pixels // (size * size)))

    def as_dict(self) -> dict:
        return asdict(self)


class UnitSpec(BaseModel):
    """One unit of a layer: a channel, or with x and y the single neuron at that position."""

    model_config = ConfigDict(extra="forbid")
    channel: int = Field(ge=0, le=MAX_INDEX, description="Channel (or class, for the logits layer).")
    x: int | None = Field(None, ge=0, le=MAX_INDEX, description="Neuron column; give y too.")
    y: int | None = Field(None, ge=0, le=MAX_INDEX, description="Neuron row; give x too.")


class RenderRequest(BaseModel):
    """What to render. Omitted size and steps take the method's defaults (`GET /api/config`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"model": "mobilenet_v2", "layer": "features.14", "unit": 40, "method": "lucid", "size": 224,
             "steps": 256, "seed": 0},
            {"model": "mobilenet_v2", "layer": "logits", "unit": 281},
            {"model": "mobilenet_v2", "layer": "features.10", "unit": {"channel": 7, "x": 3, "y": 3}},
        ]},
    )
    model: str = Field(max_length=200, description="A model this server serves (`GET /api/models`).")
    layer: str = Field(max_length=200, description="A layer of that model (`GET /api/models/{model}/layers`).")
    unit: Annotated[int, Field(ge=0, le=MAX_INDEX)] | UnitSpec = Field(
        description="A channel number (a class number for the `logits` layer), or {channel, x, y} for one neuron."
    )
    method: str = Field("lucid", max_length=40, description="Render method (`GET /api/config` lists them).")
    size: int | None = Field(None, ge=1, le=100_000, description="Image side in pixels.")
    steps: int | None = Field(None, ge=1, le=1_000_000, description="Optimization steps.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Random seed; the same request gives the same image.")

    def unit_spec(self) -> UnitSpec:
        return self.unit if isinstance(self.unit, UnitSpec) else UnitSpec(channel=self.unit)


MAX_BATCH_UNITS = 256  # units in one POST /api/renders/batch


class RenderBatchRequest(BaseModel):
    """Many units of one layer with one recipe (a grid of thumbnails): queued together, rendered in batches."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"model": "mobilenet_v2", "layer": "features.12", "units": [0, 1, 2, 3], "size": 64, "steps": 64},
        ]},
    )
    model: str = Field(max_length=200, description="A model this server serves (`GET /api/models`).")
    layer: str = Field(max_length=200, description="A layer of that model (`GET /api/models/{model}/layers`).")
    units: list[Annotated[int, Field(ge=0, le=MAX_INDEX)] | UnitSpec] = Field(
        min_length=1, max_length=MAX_BATCH_UNITS,
        description=f"1 to {MAX_BATCH_UNITS} channel numbers (class numbers for `logits`) or {{channel, x, y}}.")
    method: str = Field("lucid", max_length=40, description="Render method (`GET /api/config` lists them).")
    size: int | None = Field(None, ge=1, le=100_000, description="Image side in pixels.")
    steps: int | None = Field(None, ge=1, le=1_000_000, description="Optimization steps.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Random seed; the same request gives the same image.")

    def requests(self) -> list[RenderRequest]:
        common = self.model_dump(exclude={"units"})
        return [RenderRequest(**common, unit=unit) for unit in self.units]


class Links(BaseModel):
    self: str
    image: str
    events: str
    download: str


class RenderCreated(BaseModel):
    id: str
    state: State
    links: Links


class RenderBatchCreated(BaseModel):
    renders: list[RenderCreated | None] = Field(
        description="One per unit, in order; null where the queue was full (ask again after retry_after).")
    retry_after: int | None = Field(None, description="Seconds to wait before asking again for the null ones.")


class RenderStatus(BaseModel):
    """Where a render stands."""

    id: str
    state: State
    model: str
    layer: str
    unit: str = Field(description="Text form: LAYER:CHANNEL, LAYER:CHANNEL@X,Y or logits:CLASS.")
    method: str
    size: int
    steps: int
    seed: int
    step: int = Field(description="Optimization steps done.")
    progress: float = Field(description="Fraction done, 0 to 1.")
    activation: float | None = None
    queue_position: int | None = Field(None, description="1 = next to render; null unless queued.")
    error: str | None = None
    fault: Fault | None = Field(None, description="A failed render's: " + FAULT_HELP)
    recipe: dict | None = Field(None, description="The finished render's full recipe.")
    links: Links


class SeedActivation(BaseModel):
    """Answer of the seed's route: where the image will appear."""

    url: str = Field(description="The image: a preview while rendering, the final PNG when done.")
    id: str
    state: State
    octave: int
    size: int
    links: Links


class LayerOut(BaseModel):
    name: str
    type: str
    kind: Literal["channel", "class"]
    channels: int
    height: int
    width: int
    labels: list[str] | None = Field(None, description="Class names, for the logits layer.")


class ModelOut(BaseModel):
    name: str
    weights_id: str
    source: str
    device: str
    input_size: int
    classes: int | None
    layers: int
    default: bool


class MethodOut(BaseModel):
    name: str
    defaults: dict


class ConfigOut(BaseModel):
    default_model: str
    methods: list[MethodOut]
    limits: dict


class Problem(BaseModel):
    """Every error: what went wrong and what to change, and whose fault it is."""

    detail: str
    fault: Fault = Field(description=FAULT_HELP)
