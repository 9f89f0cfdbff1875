"""Without a network (or with a wrong --base-url) a download stops in seconds with one clear message; Ctrl-C
ends with the usual summary."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import pytest
from clirun import run_cli

from imagemachines.wga import images
from imagemachines.wga.download import DownloadOptions, download
from imagemachines.wga.reachability import ReachabilityWatch, ServerUnreachable

FAST = {"concurrency": 4, "rate": 0, "backoff": 0.01, "retries": 5, "timeout": 2.0, "seed": 0}


def closed_port_url() -> str:
    """A base URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_server_stops_the_download_early(data_dir, keys):
    base = closed_port_url()
    report = download(data_dir, keys, base, DownloadOptions(**FAST), progress=False)
    assert report.stopped and base in report.stopped and "--base-url" in report.stopped
    assert "ConnectError" in report.stopped
    # stopped after a handful of attempts: most artworks were never tried, and none is lost
    assert report.counts.get("pending", 0) >= len(keys) - 8
    assert sum(report.counts.values()) == len(keys)


def test_the_cli_names_the_server_and_what_to_check(capsys, monkeypatch, data_dir):
    base = closed_port_url()
    code, out, err = run_cli(capsys, monkeypatch, "wga", "download", "", "--base-url", base,
                             "--data-dir", str(data_dir), "--rate", "0", "--backoff", "0.01")
    assert code == 1
    assert f"Cannot reach the image server {base}" in err and "online" in err
    assert "not tried yet" in out and "images ready" in out


class _Scripted(httpx.AsyncBaseTransport):
    """Answers or refuses requests in the given order ('ok' or 'refuse')."""

    def __init__(self, script: list[str]):
        self.script = list(script)

    async def handle_async_request(self, request):
        step = self.script.pop(0)
        if step == "refuse":
            raise httpx.ConnectError("Connection refused", request=request)
        if step == "reset":
            raise httpx.ReadError("Connection reset by peer", request=request)
        return httpx.Response(200, request=request)


def _drive(watch: ReachabilityWatch, n: int) -> None:
    async def go():
        async with httpx.AsyncClient(transport=watch) as client:
            for _ in range(n):
                with contextlib.suppress(httpx.ConnectError, httpx.ReadError):
                    await client.get("http://wga.test/x")
    asyncio.run(go())


@pytest.mark.parametrize("contact", ["ok", "reset"])
def test_any_contact_with_the_server_resets_the_count(contact):
    watch = ReachabilityWatch(_Scripted(["refuse"] * 3 + [contact] + ["refuse"] * 3), after=4)
    _drive(watch, 7)
    assert watch.failures == 3 and not watch.unreachable.is_set()


def test_consecutive_refusals_raise_the_alarm_and_guard_stops_the_work():
    watch = ReachabilityWatch(_Scripted(["refuse"] * 4), after=4)
    _drive(watch, 4)
    assert watch.unreachable.is_set()

    async def forever():
        await asyncio.sleep(3600)

    with pytest.raises(ServerUnreachable, match="http://wga.test"):
        asyncio.run(watch.guard(forever(), "http://wga.test"))


def test_ctrl_c_ends_with_the_summary(capsys, monkeypatch, server, data_dir, keys):
    calls = []
    real_commit = images.commit

    def commit_then_interrupt(part, path):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real_commit(part, path)

    monkeypatch.setattr(images, "commit", commit_then_interrupt)
    code, out, err = run_cli(capsys, monkeypatch, "wga", "download", "", "--base-url", server.url,
                             "--data-dir", str(data_dir), "--rate", "0", "--concurrency", "1")
    assert code == 130
    assert "4 of" in out and "images ready" in out and "Interrupted: run the same command again" in out
