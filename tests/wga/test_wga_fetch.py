"""Unit tests of wga/fetch.py's pieces that the end-to-end download tests cannot single out: the size cap on a
streamed body (declared and counted), and the rate limiter's spacing after a pause."""

from __future__ import annotations

import asyncio
import gzip
import os
import time

import httpx
import pytest

from imagemachines.wga.fetch import CHUNK, RateLimiter, TooLarge, stream_to


def response(body: bytes, headers: dict[str, str] | None = None, piece: int = 4096) -> httpx.Response:
    """A streamed response whose body arrives in pieces of *piece* bytes, like a socket's."""

    async def pieces():
        for i in range(0, len(body), piece):
            yield body[i:i + piece]

    return httpx.Response(200, headers=headers or {}, content=pieces())


def test_a_declared_length_beyond_the_cap_is_refused_before_any_file_is_written(tmp_path):
    dest = tmp_path / "a.part"
    with pytest.raises(TooLarge) as info:
        asyncio.run(stream_to(response(b"x" * 3000, {"Content-Length": "3000"}), dest, max_bytes=2999))
    assert str(info.value) == "larger than --max-bytes 2,999 (Content-Length 3,000)"
    assert not dest.exists()


def test_a_body_of_exactly_the_cap_is_stored_whole_with_or_without_a_declared_length(tmp_path):
    body = os.urandom(5000)
    for headers in ({"Content-Length": "5000"}, {}):  # no length: a chunked body, counted as it arrives
        dest = tmp_path / "a.part"
        assert asyncio.run(stream_to(response(body, headers), dest, max_bytes=5000)) == 5000
        assert dest.read_bytes() == body


def test_an_undeclared_body_is_counted_across_all_its_chunks(tmp_path):
    # Each chunk alone is under the cap; only their sum is over it.
    cap = CHUNK + CHUNK // 2
    with pytest.raises(TooLarge) as info:
        asyncio.run(stream_to(response(b"y" * (3 * CHUNK), piece=CHUNK), tmp_path / "b.part", max_bytes=cap))
    assert str(info.value) == f"larger than --max-bytes {cap:,}"


def test_a_compressed_body_is_judged_by_its_decoded_size_not_its_declared_length(tmp_path):
    body = os.urandom(4000)  # random bytes: gzip makes them a little larger, so the declared length is over the cap
    packed = gzip.compress(body)
    assert len(packed) > 4010
    dest = tmp_path / "c.part"
    headers = {"Content-Encoding": "gzip", "Content-Length": str(len(packed))}
    assert asyncio.run(stream_to(response(packed, headers), dest, max_bytes=4010)) == 4000
    assert dest.read_bytes() == body
    bomb = gzip.compress(b"\0" * 100_000)  # small on the wire, large once decoded
    with pytest.raises(TooLarge):
        asyncio.run(stream_to(response(bomb, {"Content-Encoding": "gzip", "Content-Length": str(len(bomb))}),
                              tmp_path / "d.part", max_bytes=50_000))


def test_after_a_pause_the_workers_start_one_interval_apart_again():
    limiter = RateLimiter(5)  # one start per 0.2 s

    async def two_workers() -> list[float]:
        limiter.pause(0.3)
        starts: list[float] = []

        async def worker() -> None:
            await limiter.wait()
            starts.append(time.monotonic())

        await asyncio.gather(worker(), worker())
        return starts

    paused_at = time.monotonic()
    first, second = sorted(asyncio.run(two_workers()))
    assert first >= paused_at + 0.3  # both held by the pause
    assert second >= paused_at + 0.3 + 0.2  # and not released together when it ends: one interval after it


def fetch_with(handler, tmp_path, retries: int = 1, max_bytes: int = 10_000, check=lambda path: path.stat().st_size):
    """``fetch`` against an in-process transport whose *handler* answers (or raises for) every request."""
    import random

    from imagemachines.wga.fetch import RetryPolicy, fetch, redirect_guard

    guard = redirect_guard("http://wga.test")

    async def go():
        async def hook(request):
            guard(request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True,
                                     event_hooks={"request": [hook]}) as client:
            return await fetch(client, "http://wga.test/art/a/b.jpg", RateLimiter(0),
                               RetryPolicy(retries=retries, backoff=0.001), check, random.Random(0),
                               tmp_path / "b.part", max_bytes)

    return asyncio.run(go())


@pytest.mark.parametrize(("error", "reason"), [
    (httpx.ReadTimeout("slow"), "timeout"), (httpx.ConnectTimeout("slow"), "timeout"),
    (httpx.ConnectError("refused"), "connection error (ConnectError)"),
    (httpx.RemoteProtocolError("cut"), "connection error (RemoteProtocolError)"),
])
def test_a_fetch_that_never_gets_an_answer_says_why_after_every_attempt(tmp_path, error, reason):
    calls = []

    def handler(request):
        calls.append(request.url.path)
        raise error

    out = fetch_with(handler, tmp_path, retries=2)
    assert (out.state, out.reason, out.attempts, len(calls)) == ("failed", reason, 3, 3)
    assert not (tmp_path / "b.part").exists()


def test_a_body_over_the_cap_or_a_foreign_redirect_fails_at_once_and_counts_its_one_attempt(tmp_path):
    out = fetch_with(lambda request: httpx.Response(200, content=b"z" * 20_000), tmp_path, retries=3)
    assert (out.state, out.attempts, out.reason) == ("failed", 1, "larger than --max-bytes 10,000 "
                                                                   "(Content-Length 20,000)")
    assert not (tmp_path / "b.part").exists()  # nothing of the refused body is left behind

    def redirect(request):
        if request.url.host == "wga.test":
            return httpx.Response(302, headers={"Location": "http://elsewhere.test/x.jpg"})
        return httpx.Response(200, content=b"never asked for")

    out = fetch_with(redirect, tmp_path, retries=3)
    assert (out.state, out.attempts) == ("failed", 1)
    assert out.reason.startswith("redirected to another host (elsewhere.test); not followed")


def test_answers_that_are_final_are_not_retried(tmp_path):
    for status, state in [(404, "missing"), (410, "missing"), (403, "failed")]:
        out = fetch_with(lambda request, status=status: httpx.Response(status), tmp_path, retries=3)
        assert (out.state, out.reason, out.attempts) == (state, f"HTTP {status}", 1)
    out = fetch_with(lambda request: httpx.Response(200, content=b"fine"), tmp_path)
    assert (out.state, out.data, out.attempts) == ("ok", 4, 1)  # what check() returned


def test_a_body_that_is_not_an_image_is_retried_and_its_content_type_named(tmp_path):
    from imagemachines.wga.images import NotAnImage

    def refuse(path):
        raise NotAnImage("cannot identify image file")

    for headers, named in [({"Content-Type": "text/html"}, "text/html"), ({}, "?")]:
        calls = []

        def handler(request, headers=headers, calls=calls):
            calls.append(1)
            return httpx.Response(200, headers=headers, content=b"<html>busy</html>")

        out = fetch_with(handler, tmp_path, retries=1, check=refuse)
        assert (out.state, out.attempts, len(calls)) == ("failed", 2, 2)
        assert out.reason == f"not an image (Content-Type {named}): cannot identify image file"
        assert not (tmp_path / "b.part").exists()


def test_server_errors_are_retried_and_other_client_errors_are_not(tmp_path):
    for status, tries in [(599, 3), (503, 3), (429, 3), (499, 1), (400, 1)]:
        calls = []
        out = fetch_with(lambda request, status=status, calls=calls: calls.append(1) or httpx.Response(status),
                         tmp_path, retries=2)
        assert (out.state, out.reason, len(calls)) == ("failed", f"HTTP {status}", tries)


def test_a_rate_below_one_per_second_spaces_starts_by_more_than_a_second():
    assert RateLimiter(0.5).interval == 2.0 and RateLimiter(4).interval == 0.25 and RateLimiter(0).interval == 0.0


def test_retries_wait_the_backoff_or_the_servers_retry_after(tmp_path, monkeypatch):
    import random
    import types

    from imagemachines.wga import fetch as fetch_module
    from imagemachines.wga.fetch import RetryPolicy

    slept: list[float] = []
    real_sleep, skipped = asyncio.sleep, [0.0]
    clock = types.SimpleNamespace(monotonic=lambda: time.monotonic() + skipped[0],
                                  time=lambda: time.time() + skipped[0])

    async def record(delay, *args):  # a sleep that only moves the fetch module's clock
        slept.append(delay)
        skipped[0] += delay
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", record)
    monkeypatch.setattr(fetch_module, "time", clock)
    answers = iter([httpx.Response(500), httpx.Response(502), httpx.Response(200, content=b"ok")])
    out = fetch_with(lambda request: next(answers), tmp_path, retries=2)
    rng, policy = random.Random(0), RetryPolicy(retries=2, backoff=0.001)
    assert out.state == "ok" and slept == [policy.delay(1, rng), policy.delay(2, rng)]  # one wait per retry

    slept.clear()
    answers = iter([httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(200, content=b"ok")])
    out = fetch_with(lambda request: next(answers), tmp_path, retries=2)
    assert out.state == "ok" and slept[0] == 7.0  # the server's word, not the 1 ms backoff
    assert sum(slept) < 7.1  # the limiter's hold ended with the same pause, no backoff on top
