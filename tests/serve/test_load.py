"""Load: 200 concurrent render requests against a live server -> each completes or gets 429, never a 5xx."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from tests.conftest import tiny_loaded_model
from tests.serve.conftest import live_server

N = 200
LAYERS = ["features.0", "features.1", "features.2", "features.3"]


async def _storm(base: str) -> tuple[Counter, dict[str, str], list[str]]:
    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(i: int) -> tuple[int, str | None]:
            body = {"model": "tiny", "layer": LAYERS[i % 4], "unit": i % 8, "size": 16 + 8 * (i % 3), "steps": 2,
                    "seed": i}
            r = await client.post("/api/renders", json=body)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
            return r.status_code, r.json().get("id")

        answers = await asyncio.gather(*(one(i) for i in range(N)))
        statuses = Counter(code for code, _ in answers)
        accepted = [rid for code, rid in answers if code in (200, 202)]
        final: dict[str, str] = {}
        for _ in range(3000):
            pending = [rid for rid in accepted if rid not in final]
            if not pending:
                break
            for s in (await client.get("/api/renders", params={"ids": ",".join(pending)})).json():
                if s["state"] in ("done", "failed", "cancelled"):
                    final[s["id"]] = s["state"]
            await asyncio.sleep(0.05)
        return statuses, final, accepted


@pytest.mark.slow
def test_200_concurrent_requests_complete_or_get_429(tmp_path):
    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=tmp_path / "cache",
                     limits=Limits(max_size=64, max_steps=8, max_queue=24))
    with live_server(app) as base:
        statuses, final, accepted = asyncio.run(_storm(base))
        assert set(statuses) <= {200, 202, 429}, statuses
        assert statuses[429] > 0 and statuses[202] > 0  # the bound was reached, and work was still taken
        assert len(final) == len(accepted) and set(final.values()) == {"done"}
        with httpx.Client(base_url=base) as client:  # the server still answers, with an empty queue
            assert client.get("/api/models").status_code == 200
            counts = client.get("/api/status").json()
            assert counts["queued"] == 0 and counts["units"] == len(accepted)
            assert counts["batches"] < len(accepted)  # concurrent requests were batched
    app.state.scheduler.close()
