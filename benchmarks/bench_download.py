"""Download throughput against a local WGA-like server with a fixed per-request latency.

For each concurrency level the downloader (no rate limit) fetches a few hundred generated JPEGs; the
throughput is compared with the bound ``concurrency / latency`` that waiting on the server allows. Run from
the repository root: ``.venv/bin/python -m benchmarks.bench_download``.
"""

from __future__ import annotations

import argparse
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
        while conn.recv() == "cpu":  # answers CPU-time questions until told to stop
            conn.send(time.process_time())


@contextmanager
def served(images: dict[str, bytes], latency: float):
    """The test server in its own process, so that it does not share the downloader's interpreter lock."""
    ours, theirs = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(images, latency, theirs), daemon=True)
    proc.start()
    url = ours.recv()

    def server_cpu() -> float:
        ours.send("cpu")
        return ours.recv()

    try:
        yield url, server_cpu
    finally:
        ours.send("stop")
        proc.join(10)


def _run(template: Path, server, keys: list[str], options: DownloadOptions) -> tuple[float, float, float]:
    """Images per second, and downloader and server CPU ms per image, for one fresh download of *keys*."""
    url, server_cpu = server
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copyfile(template / "catalog.sqlite", root / "catalog.sqlite")
        start, cpu, scpu = time.perf_counter(), time.process_time(), server_cpu()
        report = download(root, keys, url, options, progress=False)
        elapsed, cpu, scpu = time.perf_counter() - start, time.process_time() - cpu, server_cpu() - scpu
        assert report.counts == {"ok": len(keys)}, report.counts
    return len(keys) / elapsed, cpu / len(keys) * 1000, scpu / len(keys) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()  # no options: --help explains and exits without measuring anything
    load = os.getloadavg()[0]
    rows = wgafake.make_rows(n_authors=60, per_author=10)
    keys = [wgafake.key_of(r) for r in rows]
    images = {k: wgafake.make_jpeg(k, IMAGE_SIZE) for k in keys}
    avg_kb = sum(map(len, images.values())) / len(images) / 1024
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp)
        write_catalog(parse_catalog(wgafake.to_csv(rows), "catalog.csv"), template, "generated")
        lines = []
        with served(images, LATENCY) as server:
            for c in LEVELS:
                n = min(len(keys), max(60, int(2.5 * c / LATENCY)))
                rate, cpu, scpu = _run(template, server, keys[:n], DownloadOptions(concurrency=c, rate=0, retries=0))
                bound = c / LATENCY
                lines.append(f"| {c} | {n} | {rate:.1f} | {bound:.0f} | {rate / bound:.2f} | {cpu:.1f} | {scpu:.1f} |")
                print(lines[-1], flush=True)
            polite, _, _ = _run(template, server, keys[:12], DownloadOptions())
        with served(images, 0.0) as server:
            ceiling, cpu0, scpu0 = _run(template, server, keys, DownloadOptions(concurrency=8, rate=0, retries=0))
    md = f"""## WGA download throughput (`benchmarks/bench_download.py`)

Local WGA-like server on 127.0.0.1 (threaded `http.server`, own process) answering every image request after a fixed
**{LATENCY * 1000:.0f} ms**; {len(keys)} generated {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} JPEGs (~{avg_kb:.0f} KiB each);
no rate limit; every image decoded, hashed, written atomically and recorded in the manifest. The bound is
what waiting on the server allows: concurrency / latency.

| concurrency | images | images/s | bound (images/s) | fraction of bound | CPU ms/image: downloader | server |
|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(lines)}

- Polite defaults (4 connections, 2 requests/s): {polite:.2f} images/s, the rate limit as intended.
- No latency, 8 connections: {ceiling:.0f} images/s ({cpu0:.1f} ms CPU per image in the downloader: HTTP,
  full decode check, sha256, atomic write, manifest commit; {scpu0:.1f} ms in the server process).
- Where the fraction falls at high concurrency the downloader's one Python process is the limit: images/s x
  downloader CPU ms/image / 1000 approaches 1 core (one interpreter lock; decoding runs in threads but HTTP,
  hashing and bookkeeping share it). Against the real site, at a polite rate, the latency and the rate decide.

Machine: {machine()}; load average {load:.1f} at the start (other work shares these cores, so the
CPU-bound rows vary from run to run).
"""
    write_section("download", md)
    print(md)


if __name__ == "__main__":
    main()
