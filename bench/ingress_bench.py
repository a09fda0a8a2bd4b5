"""The fleet ingress against the app direct: throughput ratios measured in one run.

Run with ``make bench`` (``python -m bench.ingress_bench``). Three processes on loopback: an
aiohttp app (``/small``: a 13-byte body; ``/download``: 100 MB streamed), the real ingress in
front of it (``preview_ingress.serve``: secret, assertion, revocation view, scope, header
rewriting, streaming relay; the wheel users install, compiled by mypyc, which ``make bench`` puts
ahead of the environment's pure Python copy; the heading says which ran), and this client.
Interleaved rounds, each measuring the app direct and then through the ingress:

* SMALL GETs: ``CONCURRENCY`` clients on keep-alive connections, ``SMALL_REQUESTS`` requests;
  requests per second through the ingress / direct (target ≥ 0.5);
* a 100 MB DOWNLOAD: bytes per second through the ingress / direct (target ≥ 0.8), over
  ``DOWNLOADS`` downloads per measurement.

The ingress writes its access log line per request (to ``/dev/null``), as in production.

Fair by construction: the same client code and concurrency both ways, both measured in the same
round, the order alternating round to round (direct first, then ingress first), and every
connection warmed before timing (all ``CONCURRENCY`` keep-alive connections, and through them the
ingress's pool to the app). Medians of the rounds' ratios. The client shares the machine with both
servers, so absolute figures say little; the ratios are the result. Beside them it prints the CPU
time each server process spent per small GET and per MB downloaded (``/proc``, Linux): what the
ingress costs whatever the scheduler does with three busy processes on a loaded machine. It
reports, it does not fail.

Two setups, each its own rounds in the same run:

* **sharing the CPUs** (judged): the scheduler places the three processes. On a 2-CPU machine the
  ingress then takes CPU from the client and the app, which no deployment does (the viewer is a
  browser elsewhere), so this is the harsh figure;
* **the ingress on a CPU of its own** (Linux affinity; the client and the app share another, in
  both the direct and the through measurement): the fleet tier as deployed, where the ingress has
  CPUs the app and the viewer do not use. Printed beside the judged figure, not instead of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preview_tokens.data_plane.origin_assertion import (
    PublishedOriginKey,
    b64url,
    header_segment,
    origin_jwks,
    public_key_of,
)

from bench import quiet

ROUNDS = 7
CONCURRENCY = 16
SMALL_REQUESTS = 4000
WARMUP = 20  # requests per connection before timing
DOWNLOAD_BYTES = 100 * 1024 * 1024
# Downloads per measurement: one takes about 70 ms here, shorter than what the scheduler does with
# three busy processes on two CPUs (single downloads gave round ratios from 0.2 to 1.4).
DOWNLOADS = 3
TARGET_SMALL = 0.5
TARGET_DOWNLOAD = 0.8
SECRET = "bench-ingress-secret-0123456789"
AUDIENCE = "https://ingress.bench.test"
SANDBOX = "sbx-bench01"
KID = "oa-bench"
SEED = hashlib.sha256(b"bench origin key").digest()
_BLOCK = hashlib.sha256(b"bench").digest() * 8192  # 256 KiB


def _app() -> web.Application:
    async def small(request: web.Request) -> web.Response:
        return web.Response(text="hello, world\n")

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = DOWNLOAD_BYTES
        await response.prepare(request)
        for offset in range(0, DOWNLOAD_BYTES, len(_BLOCK)):
            await response.write(_BLOCK[: DOWNLOAD_BYTES - offset])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/small", small)
    app.router.add_get("/download", download)
    return app


class _EmptyFeed:
    def entries_since(self, since_ms: int | None, now: int) -> list[Any]:
        return []


async def _serve_forever(start: Any) -> None:
    port = await start()
    print(port, flush=True)
    await asyncio.Event().wait()


def serve_upstream() -> None:
    async def start() -> int:
        runner = web.AppRunner(_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return int(runner.addresses[0][1])

    asyncio.run(_serve_forever(start))


def serve_ingress(upstream: str) -> None:
    from preview_ingress import IngressConfig, serve
    from preview_ingress.log_handler import log_to
    from preview_ingress.server import run

    # The access log as the CLI writes it (one JSON line per request), to /dev/null instead of
    # stderr: a production ingress pays for its log line, so the bench does too.
    lines = log_to(open(os.devnull, "w"))  # noqa: SIM115 (for the process's life)
    from preview_origin.verifier import OriginAssertionVerifier, StaticJwks

    keys = StaticJwks(origin_jwks([PublishedOriginKey(KID, public_key_of(SEED))]))
    config = IngressConfig(
        secret=SECRET,
        verifier=OriginAssertionVerifier(keys, AUDIENCE),
        revocation_feed=_EmptyFeed(),
        upstream=upstream,
        sandbox_id=SANDBOX,
        access_log=lines.write_line,
    )

    def started(port: int, admin_port: int) -> None:
        print(port, flush=True)

    run(serve(config, "127.0.0.1", 0, 0, started))  # on the loop the CLI runs it on


@contextmanager
def _child(*argv: str) -> Iterator[tuple[int, int]]:
    """A server process: ``(port, pid)``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.ingress_bench", *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline()), process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def _assertion() -> str:
    now = int(time.time())
    claims = {
        "aud": AUDIENCE,
        "cid": "",
        "exp": now + 3600,
        "iat": now,
        "jti": "bench",
        "scope": "read",
        "sub": SANDBOX,
        "tid": "bench",
    }
    payload = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header_segment(KID)}.{payload}"
    signature = Ed25519PrivateKey.from_private_bytes(SEED).sign(signing_input.encode())
    return f"{signing_input}.{b64url(signature)}"


async def _small_rate(url: str, headers: dict[str, str]) -> float:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        remaining = SMALL_REQUESTS

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.get(url) as response:
                    await response.read()
                    assert response.status == 200, response.status

        await asyncio.gather(*(worker_warmup(session, url) for _ in range(CONCURRENCY)))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return SMALL_REQUESTS / (time.perf_counter() - started)


async def worker_warmup(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(WARMUP):
        async with session.get(url) as response:
            await response.read()


async def _download_rate(url: str, headers: dict[str, str]) -> float:
    """Bytes per second over :data:`DOWNLOADS` downloads in a row, each on a new connection."""
    elapsed = 0.0
    for _ in range(DOWNLOADS):
        async with aiohttp.ClientSession(headers=headers) as session:
            started = time.perf_counter()
            received = 0
            async with session.get(url) as response:
                async for chunk in response.content.iter_chunked(1 << 20):
                    received += len(chunk)
            elapsed += time.perf_counter() - started
        if received != DOWNLOAD_BYTES:
            raise RuntimeError(f"download ended after {received} bytes")
    return DOWNLOADS * DOWNLOAD_BYTES / elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``), 0 where there is none."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(
    rate_of: Callable[[str, dict[str, str]], Coroutine[Any, Any, float]],
    url: str,
    headers: dict[str, str],
    pids: tuple[int, ...],
) -> tuple[float, tuple[float, ...]]:
    """The rate measured at ``url``, and the CPU seconds each of ``pids`` spent meanwhile."""
    before = [_cpu_seconds(pid) for pid in pids]
    rate = asyncio.run(rate_of(url, headers))
    return rate, tuple(_cpu_seconds(pid) - was for pid, was in zip(pids, before, strict=True))


@dataclass
class _Results:
    """One setup's rounds: (direct, through) rates, and CPU seconds per round (client and app
    direct, then client, app and ingress through the ingress)."""

    small: list[tuple[float, float]] = field(default_factory=list)
    large: list[tuple[float, float]] = field(default_factory=list)
    small_cpu: list[tuple[float, ...]] = field(default_factory=list)
    large_cpu: list[tuple[float, ...]] = field(default_factory=list)


def _rounds(direct: str, ingress: str, through: dict[str, str], pids: tuple[int, ...]) -> _Results:
    results = _Results()
    for index in range(ROUNDS):
        for rate_of, path, rates, cpus in (
            (_small_rate, "/small", results.small, results.small_cpu),
            (_download_rate, "/download", results.large, results.large_cpu),
        ):
            sides: list[tuple[str, str, dict[str, str]]] = [
                ("direct", f"{direct}{path}", {}),
                ("ingress", f"{ingress}{path}", through),
            ]
            if index % 2:
                sides.reverse()  # alternate which goes first: no order bias on a loaded machine
            measured = {side: _measured(rate_of, url, headers, pids) for side, url, headers in sides}
            rates.append((measured["direct"][0], measured["ingress"][0]))
            cpus.append((*measured["direct"][1][:2], *measured["ingress"][1]))
    return results


@contextmanager
def _ingress_on_a_cpu_of_its_own(client: int, app: int, ingress: int) -> Iterator[bool]:
    """Pin the client and the app to CPU 0 and the ingress to CPU 1 (Linux), then unpin; yields
    whether it could (2 CPUs or more, affinity allowed)."""
    everything = os.sched_getaffinity(0)
    if len(everything) < 2:
        yield False
        return
    first, second = sorted(everything)[:2]
    try:
        for pid, cpu in ((client, first), (app, first), (ingress, second)):
            os.sched_setaffinity(pid, {cpu})
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        for pid in (client, app, ingress):
            with suppress(OSError):
                os.sched_setaffinity(pid, everything)


def main() -> None:
    quiet.silence()
    if sys.argv[1:2] == ["upstream"]:
        serve_upstream()
        return
    if sys.argv[1:2] == ["ingress"]:
        serve_ingress(sys.argv[2])
        return
    through = {
        "X-Preview-Ingress-Secret": SECRET,
        "X-Preview-Assertion": _assertion(),
        "X-Preview-Token-Id": "bench",
    }
    with (
        _child("upstream") as (app_port, app_pid),
        _child("ingress", f"http://127.0.0.1:{app_port}") as (ingress_port, ingress_pid),
    ):
        direct, ingress = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{ingress_port}"
        pids = (os.getpid(), app_pid, ingress_pid)  # this process is the client
        shared = _rounds(direct, ingress, through, pids)
        with _ingress_on_a_cpu_of_its_own(*pids) as pinned_ok:
            pinned = _rounds(direct, ingress, through, pids) if pinned_ok else None
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    from preview_ingress import compiled

    form = "compiled by mypyc, as its wheel installs" if compiled() else "pure Python"
    print(
        f"fleet ingress ({form}) vs the app direct (3 processes on loopback, medians of {ROUNDS} "
        f"interleaved rounds; load average {load} on {os.cpu_count()} CPUs)"
    )
    _report("the three processes sharing the CPUs (judged)", shared)
    if pinned is not None:
        _report(
            "the ingress on a CPU of its own, the client and the app sharing another "
            "(the fleet tier as deployed; not judged)",
            pinned,
        )


def _report(setup: str, results: _Results) -> None:
    print(f"  {setup}:")
    small_ratios = [via / base for base, via in results.small]
    large_ratios = [via / base for base, via in results.large]
    small_ratio, large_ratio = statistics.median(small_ratios), statistics.median(large_ratios)
    print(
        f"    small GETs, {CONCURRENCY} concurrent: "
        f"direct {statistics.median(b for b, _ in results.small):,.0f} req/s, "
        f"ingress {statistics.median(v for _, v in results.small):,.0f} req/s, "
        f"ratio {_shown(small_ratio)} (target >= {TARGET_SMALL}: {_verdict(small_ratio, TARGET_SMALL)}; "
        f"rounds {_spread(small_ratios)})"
    )
    requests = SMALL_REQUESTS + CONCURRENCY * WARMUP  # the warm-up's are in the CPU time too
    cpu = results.small_cpu
    print(
        f"      CPU per request: direct, client {_per(cpu, 0, requests)} + app {_per(cpu, 1, requests)}; "
        f"through, client {_per(cpu, 2, requests)} + app {_per(cpu, 3, requests)} "
        f"+ ingress {_per(cpu, 4, requests)}"
    )
    print(
        f"    100 MB download: direct {statistics.median(b for b, _ in results.large) / 1e6:,.0f} MB/s, "
        f"ingress {statistics.median(v for _, v in results.large) / 1e6:,.0f} MB/s, "
        f"ratio {_shown(large_ratio)} (target >= {TARGET_DOWNLOAD}: "
        f"{_verdict(large_ratio, TARGET_DOWNLOAD)}; rounds {_spread(large_ratios)})"
    )
    megabytes = DOWNLOADS * DOWNLOAD_BYTES / 1e6
    cpu = results.large_cpu
    print(
        f"      CPU per MB: direct, client {_per(cpu, 0, megabytes)} + app {_per(cpu, 1, megabytes)}; "
        f"through, client {_per(cpu, 2, megabytes)} + app {_per(cpu, 3, megabytes)} "
        f"+ ingress {_per(cpu, 4, megabytes)}"
    )


def _shown(ratio: float) -> str:
    """``ratio`` to two decimals, rounded down: 0.797 reads 0.79 beside its "MISSED", not 0.80."""
    return f"{math.floor(ratio * 100) / 100:.2f}"


def _spread(ratios: list[float]) -> str:
    """The lowest and highest of the rounds' ratios: how far one round's figure strays."""
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


def _verdict(ratio: float, target: float) -> str:
    return "met" if ratio >= target else "MISSED"


def _per(cpus: list[tuple[float, ...]], column: int, units: float) -> str:
    """Median over the rounds of one process's CPU time per unit (request, MB), in microseconds.

    ``/proc`` counts in clock ticks (10 ms): per 100 MB, that is ±100 us per MB."""
    return f"{statistics.median(row[column] / units for row in cpus) * 1e6:,.0f} us"


if __name__ == "__main__":
    main()
