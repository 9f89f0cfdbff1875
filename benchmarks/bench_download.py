"""Download throughput against a local WGA-like server with a fixed per-request latency.

For each concurrency level the downloader (no rate limit) fetches a few hundred generated JPEGs; the
throughput is compared with the bound ``concurrency / latency`` that waiting on the server allows. Run from
the repository root: ``.venv/bin/python -m benchmarks.bench_download``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.report import machine, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "wga"))

import wgafake  # noqa: E402
from wgaserver import WgaServer  # noqa: E402

from imagemachines.wga.catalog import write_catalog  # noqa: E402
from imagemachines.wga.download import DownloadOptions, download  # noqa: E402
from imagemachines.wga.parse import parse_catalog  # noqa: E402

LATENCY = 0.05
LEVELS = (1, 2, 4, 8, 16, 32)
IMAGE_SIZE = (480, 360)


def _serve(images: dict[str, bytes], latency: float, conn) -> None:
    with WgaServer(images, latency=latency) as server:
        conn.send(server.url)
        conn.recv()  # until told to stop


@contextmanager
def served(images: dict[str, bytes], latency: float):
    """The test server in its own process, so that it does not share the downloader's interpreter lock."""
    ours, theirs = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(images, latency, theirs), daemon=True)
    proc.start()
    try:
        yield ours.recv()
    finally:
        ours.send("stop")
        proc.join(10)


def _run(template: Path, url: str, keys: list[str], options: DownloadOptions) -> tuple[float, float]:
    """Images per second, and downloader CPU milliseconds per image, for one fresh download of *keys*."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copyfile(template / "catalog.sqlite", root / "catalog.sqlite")
        start, cpu = time.perf_counter(), time.process_time()
        report = download(root, keys, url, options, progress=False)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert report.counts == {"ok": len(keys)}, report.counts
    return len(keys) / elapsed, cpu / len(keys) * 1000


def main() -> None:
    load = os.getloadavg()[0]
    rows = wgafake.make_rows(n_authors=60, per_author=10)
    keys = [wgafake.key_of(r) for r in rows]
    images = {k: wgafake.make_jpeg(k, IMAGE_SIZE) for k in keys}
    avg_kb = sum(map(len, images.values())) / len(images) / 1024
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp)
        write_catalog(parse_catalog(wgafake.to_csv(rows), "catalog.csv"), template, "generated")
        lines = []
        with served(images, LATENCY) as url:
            for c in LEVELS:
                n = min(len(keys), max(60, int(2.5 * c / LATENCY)))
                rate, cpu = _run(template, url, keys[:n], DownloadOptions(concurrency=c, rate=0, retries=0))
                bound = c / LATENCY
                lines.append(f"| {c} | {n} | {rate:.1f} | {bound:.0f} | {rate / bound:.2f} | {cpu:.1f} |")
                print(lines[-1], flush=True)
            polite, _ = _run(template, url, keys[:12], DownloadOptions())
        with served(images, 0.0) as url:
            ceiling, cpu0 = _run(template, url, keys, DownloadOptions(concurrency=8, rate=0, retries=0))
    md = f"""## WGA download throughput (`benchmarks/bench_download.py`)

Local WGA-like server on 127.0.0.1 (threaded `http.server`, own process) answering every image request after a fixed
**{LATENCY * 1000:.0f} ms**; {len(keys)} generated {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} JPEGs (~{avg_kb:.0f} KiB each);
no rate limit; every image decoded, hashed, written atomically and recorded in the manifest. The bound is
what waiting on the server allows: concurrency / latency.

| concurrency | images | images/s | bound (images/s) | fraction of bound | downloader CPU ms/image |
|---:|---:|---:|---:|---:|---:|
{chr(10).join(lines)}

- Polite defaults (4 connections, 2 requests/s): {polite:.2f} images/s, the rate limit as intended.
- No latency, 8 connections: {ceiling:.0f} images/s ({cpu0:.1f} ms CPU per image in the downloader: HTTP,
  full decode check, sha256, atomic write, manifest commit); the server runs in a separate process.
- Where the fraction falls at high concurrency the machine's CPU is the limit, not the server: multiply
  the CPU time per image by the rate to see how many cores were busy (the server uses about as much again).

Machine: {machine()}; load average {load:.1f} at the start (other work shares these cores, so the
CPU-bound rows vary from run to run).
"""
    write_section("download", md)
    print(md)


if __name__ == "__main__":
    main()
