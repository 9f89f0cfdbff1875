"""Upload memory: the server's resident memory during and after a burst of concurrent decompression bombs.

    .venv/bin/python -m benchmarks.bench_upload_memory [--baseline-src DIR] [--uploads 16] [--quick]

Issue 18's burst: N uploads at once (threads, one connection each) of a PNG of 7070 × 7070 RGBA pixels that
deflates to about 190 KiB (under the 50 Mpx bound), and the same burst of the largest RGBA PNG the server now
decodes (4000 × 4000). Each copy differs by a text chunk, so none is answered from the upload cache. The server is
``create_app`` on the tiny test network (the decode's memory does not depend on the model) in a process of its
own; its peak resident memory (``VmHWM``, reset before each burst) and its resident memory 3 s after the burst
(``VmRSS``) are read from ``/proc``. With ``--baseline-src`` (the ``src`` folder of an older checkout) the same
bursts run against that code too, side by side in this run. Linux only. Writes the ``upload-memory`` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from io import BytesIO
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.report import machine, publish

ROOT = Path(__file__).resolve().parents[1]
SERVER = """
import sys
from imagemachines.serve.app import create_app
from imagemachines.serve.server import run_server, uvicorn_options
from tests.conftest import tiny_loaded_model
app = create_app({"tiny": tiny_loaded_model()}, cache_dir=sys.argv[2])
run_server(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error", **uvicorn_options())
"""


def png_copies(side: int, n: int) -> list[bytes]:
    """*n* PNGs of one *side* × *side* RGBA image (nearly uniform, so it deflates ~1000:1), each with its own text
    chunk (other bytes, the same pixels)."""
    buf = BytesIO()
    Image.new("RGBA", (side, side), (180, 140, 90, 255)).save(buf, format="PNG", compress_level=9)
    data = buf.getvalue()
    end = data.rindex(b"IEND") - 4

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    return [data[:end] + chunk(b"tEXt", b"Comment\x00copy %d" % i) + data[end:] for i in range(n)]


def _proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def burst(src: Path, bombs: list[bytes], warmup: bytes) -> dict:
    """Start a server on *src*, warm it up with one small upload, then send *bombs* at once; MiB and answers."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
    with tempfile.TemporaryDirectory() as cache:
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), cache], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with httpx.Client(base_url=base, timeout=600) as client:
                for _ in range(600):
                    try:
                        client.get("/api/config")
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                assert client.post("/api/uploads", content=warmup).status_code == 200
            time.sleep(1)
            idle = _proc_kib(server.pid, "VmRSS")
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            answers: list[int] = []

            def send(data: bytes) -> None:
                with httpx.Client(base_url=base, timeout=600) as client:
                    answers.append(client.post("/api/uploads", content=data).status_code)

            threads = [threading.Thread(target=send, args=(b,)) for b in bombs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            peak = _proc_kib(server.pid, "VmHWM")
            time.sleep(3)
            settled = _proc_kib(server.pid, "VmRSS")
        finally:
            server.terminate()
            server.wait(30)
    mib = lambda kib: kib / 1024  # noqa: E731
    return {"idle": mib(idle), "peak": mib(peak), "settled": mib(settled), "answers": dict(sorted(Counter(answers)
                                                                                                  .items()))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", type=Path, help="the src folder of an older checkout, measured too")
    parser.add_argument("--uploads", type=int, default=16, help="concurrent uploads in the burst")
    parser.add_argument("--quick", action="store_true", help="4 uploads of smaller images; publishes nothing")
    args = parser.parse_args(argv)
    n = 4 if args.quick else args.uploads
    sides = (2000, 1000) if args.quick else (7070, 4000)
    warmup = png_copies(64, 1)[0]
    codes = [("this checkout", ROOT / "src")] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    rows = []
    for side in sides:
        bombs = png_copies(side, n)
        print(f"{n} × {side}² RGBA PNG, {len(bombs[0]) / 1024:.0f} KiB each")
        for name, src in reversed(codes):
            r = burst(src.resolve(), bombs, warmup)
            print(f"  {name}: idle {r['idle']:.0f} MiB, peak {r['peak']:.0f} MiB, settled {r['settled']:.0f} MiB, "
                  f"answers {r['answers']}")
            rows.append(f"| {n} × {side}×{side} RGBA PNG ({len(bombs[0]) / 1024:.0f} KiB) | {name} | "
                        f"{r['idle']:.0f} | {r['peak']:.0f} (+{r['peak'] - r['idle']:.0f}) | "
                        f"{r['settled']:.0f} (+{r['settled'] - r['idle']:.0f}) | "
                        f"{', '.join(f'{k}: {v}' for k, v in r['answers'].items())} |")
    load = os.getloadavg()
    markdown = "\n".join([
        "## Upload memory (`benchmarks/bench_upload_memory.py`)", "",
        f"{machine()}; load average {load[0]:.1f} while measuring. The server's resident memory (MiB) before, at its "
        f"peak during, and 3 s after {n} concurrent uploads; the server runs the tiny test network, so *idle* is "
        "mostly PyTorch. Answers are HTTP status counts.", "",
        "| burst | code | idle | peak (above idle) | settled (above idle) | answers |",
        "|---|---|---|---|---|---|", *rows])
    publish("upload-memory", markdown, quick=args.quick)


if __name__ == "__main__":
    main()
