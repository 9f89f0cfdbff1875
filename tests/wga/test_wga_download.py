"""The downloader against the local server: faults, retries, Retry-After, 404s, reconciliation, options."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from clirun import run_cli
from PIL import Image
from wgacheck import check_store_matches_manifest
from wgafake import NOT_ON_SERVER

from imagemachines.errors import UserError
from imagemachines.wga.download import DownloadOptions, download, exclusive
from imagemachines.wga.manifest import Manifest
from imagemachines.wga.paths import manifest_db, store_dir

FAST = {"concurrency": 8, "rate": 0, "backoff": 0.01, "retries": 3, "timeout": 1.0, "seed": 0}


def test_every_available_image_arrives_despite_faults(server, data_dir, keys, jpegs):
    faults = {keys[0]: ["500", "500"], keys[1]: ["503"], keys[2]: ["reset"], keys[3]: ["truncate"],
              keys[4]: ["html", "html"], keys[5]: ["corrupt"], keys[6]: ["plain"], keys[7]: ["sleep:1.5"],
              keys[8]: ["429:1"], keys[9]: ["reset", "truncate", "500"]}
    for k, f in faults.items():
        server.inject(k, *f)
    report = download(data_dir, keys, server.url, DownloadOptions(**FAST), progress=False)
    assert report.counts == {"ok": len(jpegs), "missing": NOT_ON_SERVER}
    assert report.failed == 0 and report.fetched == len(jpegs)
    check_store_matches_manifest(data_dir, "art", jpegs)
    for k, f in faults.items():  # each fault cost one extra request, except 'plain' (a good image)
        assert server.requests[f"/art/{k}.jpg"] == 1 + len(f) - (f == ["plain"]), k
    t = server.times[keys[8]]
    assert t[1] - t[0] >= 0.95  # Retry-After: 1 was honoured
    for k in keys[-NOT_ON_SERVER:]:  # 404: recorded as missing after one request
        assert server.requests[f"/art/{k}.jpg"] == 1
    assert all(ua.startswith("imagemachines/") for ua in server.user_agents)
    assert server.accept_encodings == {"identity"}  # JPEGs gain nothing from compression; no decoding to do


def test_persistent_failures_exit_nonzero_and_a_rerun_finishes(capsys, monkeypatch, server, data_dir, keys, jpegs):
    server.always = {keys[10]: "500", keys[11]: "html"}
    args = ["wga", "download", "", "--base-url", server.url, "--data-dir", str(data_dir), "--rate", "0",
            "--concurrency", "6", "--retries", "2", "--backoff", "0.01"]
    code, out, err = run_cli(capsys, monkeypatch, *args)
    assert code == 1, err
    assert "educational and personal use" in err
    assert "failed: 2" in out and "HTTP 500" in out and "not an image" in out
    with Manifest(manifest_db(data_dir), readonly=True) as m:
        failed = {it.id: it for it in m.items("art", states=("failed",))}
    assert set(failed) == {keys[10], keys[11]} and failed[keys[10]].attempts == 3
    assert server.requests[f"/art/{keys[10]}.jpg"] == 3
    server.always = {}
    code, out, err = run_cli(capsys, monkeypatch, *args)
    assert code == 0, out + err
    assert "fetched 2 now" in out and f"missing on the server: {NOT_ON_SERVER}" in out
    assert all(n == 1 for k, n in server.served.items())  # nothing complete was fetched again
    check_store_matches_manifest(data_dir, "art", jpegs)


def test_missing_images_are_not_retried_unless_asked(server, data_dir, keys):
    gone = keys[-NOT_ON_SERVER:]
    download(data_dir, gone, server.url, DownloadOptions(**FAST), progress=False)
    report = download(data_dir, gone, server.url, DownloadOptions(**FAST), progress=False)
    assert report.counts == {"missing": NOT_ON_SERVER} and report.fetched == 0
    assert all(server.requests[f"/art/{k}.jpg"] == 1 for k in gone)
    download(data_dir, gone, server.url, DownloadOptions(**FAST, retry_missing=True), progress=False)
    assert all(server.requests[f"/art/{k}.jpg"] == 2 for k in gone)


def test_rate_limit_connections_and_variant(server, data_dir, keys):
    some = keys[:21]
    download(data_dir, some, server.url, DownloadOptions(concurrency=3, rate=20, variant="detail"), progress=False)
    starts = sorted(server.times[k][0] for k in some)
    assert starts[-1] - starts[0] >= 20 / 20 * 0.9  # 21 requests at 20/s span at least ~1 s
    assert server.max_active <= 3
    assert all(server.requests[f"/detail/{k}.jpg"] == 1 for k in some)
    assert store_dir(data_dir, "detail").is_dir()
    with Manifest(manifest_db(data_dir), readonly=True) as m:  # the manifest names the variant's URL
        assert {it.url for it in m.items("detail", some[:2])} == {f"{server.url}/detail/{k}.jpg" for k in some[:2]}


def test_max_side_stores_downscaled_copies(server, data_dir, keys):
    report = download(data_dir, keys[:6], server.url, DownloadOptions(**{**FAST, "retries": 0}, max_side=40),
                      progress=False)
    assert report.store == "art-40" and report.counts == {"ok": 6}
    for k in keys[:6]:
        img = Image.open(store_dir(data_dir, "art-40") / f"{k}.jpg")
        assert max(img.size) == 40 and img.size == (40, 27)  # 96 x 64 scaled, aspect kept
    check_store_matches_manifest(data_dir, "art-40", dict.fromkeys(keys[:6]))


def test_rerun_reconciles_manifest_and_disk(server, data_dir, keys, jpegs):
    some = keys[:12]
    download(data_dir, some, server.url, DownloadOptions(**FAST), progress=False)
    folder = store_dir(data_dir, "art")
    (folder / f"{some[0]}.jpg").unlink()                                   # deleted by the user
    data = bytearray((folder / f"{some[1]}.jpg").read_bytes())
    data[200] ^= 0xFF
    (folder / f"{some[1]}.jpg").write_bytes(bytes(data))                   # same size, other bytes
    (folder / f"{some[2]}.jpg.123.part").write_bytes(b"half")              # left by a killed run
    with Manifest(manifest_db(data_dir)) as m:                             # renamed, then killed
        m.set_state("art", some[3], "pending")
    report = download(data_dir, some, server.url, DownloadOptions(**FAST), progress=False)
    assert (report.fetched, report.adopted, report.partials_removed) == (1, 1, 1)
    assert server.served[some[0]] == 2 and server.served[some[3]] == 1
    report = download(data_dir, some, server.url, DownloadOptions(**FAST, verify=True), progress=False)
    assert report.fetched == 1 and server.served[some[1]] == 2
    check_store_matches_manifest(data_dir, "art", {k: jpegs[k] for k in some})


def test_one_download_per_data_dir(server, data_dir, keys):
    with exclusive(data_dir), pytest.raises(UserError, match="another `imagemachines wga download`"):
        download(data_dir, keys[:2], server.url, DownloadOptions(**FAST), progress=False)


@pytest.mark.parametrize(("option", "message"), [
    ({"concurrency": 0}, "--concurrency"), ({"rate": -1}, "--rate"), ({"max_side": 4}, "--max-side"),
    ({"variant": "big"}, "unknown image variant"),
])
def test_bad_options_are_clear_errors(data_dir, option, message):
    with pytest.raises(UserError, match=message):
        download(data_dir, ["a/b"], "http://127.0.0.1:9", DownloadOptions(**option), progress=False)


@pytest.mark.parametrize(("option", "message"), [
    ({"concurrency": 0}, "--concurrency 0 is out of range: use 1 to 64 (a few is polite)."),
    ({"concurrency": 65}, "--concurrency 65 is out of range: use 1 to 64 (a few is polite)."),
    ({"rate": -0.5}, "--rate -0.5 is negative: give requests per second, or 0 for no limit."),
    ({"max_side": 15}, "--max-side 15 is too small: use at least 16 pixels, or leave it out."),
    ({"retries": -1}, "--retries and --backoff must be >= 0 and --timeout > 0."),
    ({"backoff": -0.01}, "--retries and --backoff must be >= 0 and --timeout > 0."),
    ({"timeout": 0.0}, "--retries and --backoff must be >= 0 and --timeout > 0."),
    ({"max_bytes": 1023}, "--max-bytes 1023 is too small: images need at least a few kB."),
])
def test_options_just_outside_their_bounds_are_refused_with_the_bound(option, message):
    with pytest.raises(UserError) as info:
        DownloadOptions(**option).validate()
    assert str(info.value) == message


def test_options_at_their_bounds_are_accepted():
    for option in ({"concurrency": 1}, {"concurrency": 64}, {"rate": 0.0}, {"max_side": 16}, {"max_side": None},
                   {"retries": 0}, {"backoff": 0.0}, {"timeout": 0.001}, {"max_bytes": 1024}):
        DownloadOptions(**option).validate()  # raises on a bound drawn one step too tight


def test_empty_selection_is_an_error(capsys, monkeypatch, data_dir):
    code, _, err = run_cli(capsys, monkeypatch, "wga", "download", "TYPE=nothing", "--data-dir", str(data_dir))
    assert code == 2 and "selects no artwork" in err
    with pytest.raises(UserError) as info:
        download(data_dir, [], "http://127.0.0.1:9", DownloadOptions(), progress=False)
    assert str(info.value) == ("the query selects no artwork, so there is nothing to download; check it with "
                               "`imagemachines wga query QUERY --count`.")


def test_images_decode_check_rejects_truncation(jpegs):
    from imagemachines.wga.images import NotAnImage, decode_check

    data = next(iter(jpegs.values()))
    assert decode_check(data) == Image.open(io.BytesIO(data)).size
    with pytest.raises(NotAnImage):
        decode_check(data[: len(data) - 40])


def test_images_reach_their_final_name_only_whole_and_flushed(tmp_path, monkeypatch):
    import os

    from imagemachines.wga import images

    final = tmp_path / "a" / "b.jpg"
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", final.exists()))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", final.exists(), Path(src).read_bytes() == b"whole"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    images.write_atomic(final, b"whole")
    assert events == [("fsync", False), ("replace", False, True)] and final.read_bytes() == b"whole"
    assert [p.name for p in final.parent.iterdir()] == ["b.jpg"]

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        images.write_atomic(final.with_name("c.jpg"), b"lost")
    assert [p.name for p in final.parent.iterdir()] == ["b.jpg"]  # neither c.jpg nor its temporary file


def test_a_leftover_file_is_adopted_only_if_it_decodes(server, data_dir, keys):
    some = keys[:3]
    download(data_dir, some, server.url, DownloadOptions(**FAST), progress=False)
    folder = store_dir(data_dir, "art")
    whole = (folder / f"{some[0]}.jpg").read_bytes()
    (folder / f"{some[0]}.jpg").write_bytes(whole[: len(whole) // 2])  # renamed into place cut short
    with Manifest(manifest_db(data_dir)) as m:
        m.set_state("art", some[0], "pending")
        m.set_state("art", some[1], "pending")  # renamed whole, then killed before recording it
    report = download(data_dir, some, server.url, DownloadOptions(**FAST), progress=False)
    assert (report.adopted, report.fetched) == (1, 1)
    assert server.served[some[0]] == 2 and server.served[some[1]] == 1
    assert (folder / f"{some[0]}.jpg").read_bytes() == whole


def test_retry_after_in_both_forms():
    import email.utils
    import time

    from imagemachines.wga.fetch import retry_after_seconds

    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(" 0 ") == 0.0
    soon = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 100 < retry_after_seconds(soon) <= 120
    assert retry_after_seconds(email.utils.formatdate(time.time() - 120, usegmt=True)) == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("") is None
    assert retry_after_seconds("soon, please") is None


def test_a_long_retry_after_is_capped(server, data_dir, keys):
    server.inject(keys[0], "429:3600")
    report = download(data_dir, keys[:1], server.url, DownloadOptions(**FAST, max_retry_after=0.2),
                      progress=False)
    assert report.counts == {"ok": 1}
    first, second = server.times[keys[0]]
    assert 0.15 <= second - first < 60  # waited the capped 0.2 s, not the hour the server asked for


def test_concurrency_bounds_the_open_requests(server, data_dir, keys):
    server.latency = 0.5  # every answer takes a while, so requests overlap as far as the client lets them
    report = download(data_dir, keys[:9], server.url, DownloadOptions(**{**FAST, "concurrency": 3}),
                      progress=False)
    assert report.counts == {"ok": 9}
    assert server.max_active == 3


def test_backoff_doubles_with_jitter_between_half_and_all_and_is_capped():
    import random

    from imagemachines.wga.fetch import RetryPolicy

    policy, rng = RetryPolicy(backoff=1.0, max_backoff=10.0), random.Random(0)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert full / 2 <= min(delays) < full / 2 + full / 8 and full - full / 8 < max(delays) <= full, attempt


def test_pausing_the_rate_limiter_holds_it_for_that_long():
    import time

    from imagemachines.wga.fetch import RateLimiter

    assert RateLimiter(4).interval == 0.25 and RateLimiter(0).interval == 0  # starts per second; 0 = unlimited
    limiter = RateLimiter(0)
    before = time.monotonic()
    limiter.pause(30)
    assert before + 30 <= limiter._paused_until <= time.monotonic() + 30
    limiter.pause(1)  # a shorter pause does not cut a longer one short
    assert limiter._paused_until >= before + 30


def test_retry_missing_still_fetches_pending_and_failed_items(server, data_dir, keys):
    gone = keys[-1]  # 404 on the server
    server.always = {keys[0]: "500"}
    download(data_dir, [keys[0], gone], server.url, DownloadOptions(**{**FAST, "retries": 0}), progress=False)
    server.always = {}
    report = download(data_dir, [keys[0], keys[1], gone], server.url, DownloadOptions(**FAST, retry_missing=True),
                      progress=False)  # failed, new (pending) and missing: all three are asked for again
    assert report.counts == {"ok": 2, "missing": 1} and report.fetched == 2
    assert server.requests[f"/art/{gone}.jpg"] == 2


def test_a_download_looks_only_at_its_own_selection_and_counts_what_it_found(server, data_dir, keys):
    download(data_dir, keys[:3], server.url, DownloadOptions(**FAST), progress=False)
    report = download(data_dir, keys[3:5], server.url, DownloadOptions(**FAST), progress=False)
    assert (report.selected, report.already, report.fetched, report.counts) == (2, 0, 2, {"ok": 2})
    with Manifest(manifest_db(data_dir)) as m:  # two files renamed into place, then killed before recording
        m.set_state("art", keys[0], "pending")
        m.set_state("art", keys[3], "pending")
    report = download(data_dir, keys[:6], server.url, DownloadOptions(**FAST), progress=False)
    assert (report.selected, report.already, report.adopted, report.fetched) == (6, 3, 2, 1)
    server.always = {keys[6]: "500"}
    download(data_dir, keys[6:7], server.url, DownloadOptions(**{**FAST, "retries": 0}), progress=False)
    before = time.monotonic()
    report = download(data_dir, keys[7:8], server.url, DownloadOptions(**FAST), progress=False)
    assert report.counts == {"ok": 1} and report.reasons == {}  # keys[6]'s failure is not this selection's
    assert 0 <= report.elapsed <= time.monotonic() - before


def test_a_leftover_file_beyond_the_pixel_bound_is_not_adopted(server, data_dir, keys):
    download(data_dir, keys[:1], server.url, DownloadOptions(**FAST), progress=False)
    with Manifest(manifest_db(data_dir)) as m:
        m.set_state("art", keys[0], "pending")
    report = download(data_dir, keys[:1], server.url, DownloadOptions(**{**FAST, "retries": 0}, max_pixels=6143),
                      progress=False)  # the stored 96×64 picture is above this bound
    assert report.adopted == 0 and report.counts == {"failed": 1}


def test_an_item_whose_name_the_filesystem_refuses_is_tried_again_on_a_rerun(server, data_dir, keys, jpegs):
    bad = "x" * 300  # a file name longer than any filesystem allows: reconciling it raises OSError
    server.images = {**jpegs, bad: jpegs[keys[0]]}
    for attempt in (1, 2):
        report = download(data_dir, [keys[0], bad], server.url, DownloadOptions(**FAST), progress=False)
        assert report.counts == {"ok": 1, "failed": 1}
        assert server.requests[f"/art/{bad}.jpg"] == attempt
        [(reason, n)] = report.reasons.items()
        assert n == 1 and reason.startswith("OSError: ") and "File name too long" in reason
        assert len(reason) == 300  # the long name makes the message longer: cut to 300 characters


def test_a_vanished_file_is_marked_pending_before_any_fetch(server, data_dir, keys, monkeypatch):
    from imagemachines.wga import download as download_module

    download(data_dir, keys[:4], server.url, DownloadOptions(**FAST), progress=False)
    (store_dir(data_dir, "art") / f"{keys[0]}.jpg").unlink()

    async def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C before the first request

    monkeypatch.setattr(download_module, "_run", interrupted)
    report = download(data_dir, keys[:4], server.url, DownloadOptions(**FAST), progress=False)
    assert report.interrupted and report.counts == {"ok": 3, "pending": 1}
    with Manifest(manifest_db(data_dir), readonly=True) as m:
        [item] = m.items("art", states=("pending",))
    assert (item.id, item.reason) == (keys[0], "file changed or vanished on disk")


def test_each_fetch_gets_the_options_retry_policy_and_seeded_generator(server, data_dir, keys, monkeypatch):
    import random

    from imagemachines.wga import fetch as fetch_module

    seen = []
    real_fetch = fetch_module.fetch

    async def spy(client, url, limiter, policy, check, rng, dest, max_bytes):
        seen.append((policy, rng.getstate(), max_bytes))
        return await real_fetch(client, url, limiter, policy, check, rng, dest, max_bytes)

    monkeypatch.setattr(fetch_module, "fetch", spy)
    options = DownloadOptions(**{**FAST, "concurrency": 1, "seed": 7, "backoff": 0.02}, max_retry_after=9.0,
                              max_bytes=123_456)
    download(data_dir, keys[:2], server.url, options, progress=False)
    (policy, state, max_bytes), _ = seen
    assert (policy.retries, policy.backoff, policy.max_retry_after, max_bytes) == (3, 0.02, 9.0, 123_456)
    assert state == random.Random(7).getstate()


def test_the_manifest_records_how_many_attempts_an_image_took_and_the_report_its_bytes(server, data_dir, keys):
    server.inject(keys[0], "500", "503")
    report = download(data_dir, keys[:3], server.url, DownloadOptions(**FAST), progress=False)
    with Manifest(manifest_db(data_dir), readonly=True) as m:
        items = m.items("art", keys[:3])
    assert {it.id: it.attempts for it in items} == {keys[0]: 3, keys[1]: 1, keys[2]: 1}
    assert report.bytes == sum(it.bytes for it in items) == sum(
        (store_dir(data_dir, "art") / it.path).stat().st_size for it in items)


def test_the_progress_bar_counts_every_image_and_shows_failures_and_missing(server, data_dir, keys, jpegs,
                                                                            monkeypatch):
    import tqdm

    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.n, self.postfix = kwargs, kwargs.get("initial", 0), {}
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix(self, **kwargs):
            self.postfix = kwargs

        def close(self):
            pass

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    bad, gone = "x" * 300, keys[-1]  # a refused file name; a 404
    server.images = {**jpegs, bad: jpegs[keys[0]]}
    worse = "y" * 300  # a second refused name: the bar counts failures, it does not just flag them
    server.images = {**jpegs, bad: jpegs[keys[0]], worse: jpegs[keys[0]]}
    download(data_dir, [keys[0], keys[1], bad, gone, worse], server.url, DownloadOptions(**FAST), progress=False)
    [bar] = bars
    assert (bar.kwargs["total"], bar.n, bar.kwargs["disable"]) == (5, 5, True)
    assert (bar.kwargs["desc"], bar.kwargs["unit"]) == ("wga art", "img")
    assert bar.postfix == {"failed": 2, "missing": 1, "refresh": False}
    download(data_dir, keys[2:3], server.url, DownloadOptions(**FAST))
    assert bars[1].kwargs["disable"] is False and bars[1].kwargs["initial"] == 0  # shown unless asked not to
    with Manifest(manifest_db(data_dir), readonly=True) as m:
        [item] = m.items("art", keys[2:3])
    assert item.url == f"{server.url}/art/{keys[2]}.jpg"
