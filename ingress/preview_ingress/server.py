"""Run the ingress: the proxy on one port, ``/healthz`` and ``/metrics`` on an admin port.

:func:`serve` runs until cancelled (the CLI); :func:`start_in_thread` runs it on a thread of its
own and returns once both ports listen (the local stack, the tests, the bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from preview_ingress.config import IngressConfig
from preview_ingress.metrics import CONTENT_TYPE, IngressMetrics
from preview_ingress.proxy import IngressProxy
from preview_ingress.revocations import RevocationWatch
from preview_ingress.viewer import ViewerConnection

_SHUTDOWN_SECONDS = 5.0
_T = TypeVar("_T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux, macOS: a dependency of the ingress), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on :func:`new_event_loop`: how the CLI and the bench run the ingress."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class _Ports:
    port: int
    admin_port: int


class _Ingress:
    """The two aiohttp servers and the background tasks (revocation poll, stream expiry)."""

    def __init__(self, config: IngressConfig) -> None:
        self.watch = RevocationWatch(
            config.revocation_feed,
            config.revocation_poll_seconds,
            config.max_revocation_staleness_seconds,
            renewal_verifier=config.verifier.verify_renewal,
        )
        self.metrics = IngressMetrics(self.watch.staleness_seconds)
        self.proxy = IngressProxy(config, self.watch, self.metrics)
        self._config = config
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncio.Server | None = None

    async def start(self, host: str, port: int, admin_host: str, admin_port: int) -> _Ports:
        await self.proxy.start()
        await self.watch.poll_once()  # a fresh view before the first request, when the feed answers
        self._tasks = [
            asyncio.ensure_future(self.watch.poll_forever()),
            asyncio.ensure_future(self.proxy.tick_forever()),
        ]
        proxy_app = web.Application(client_max_size=0, handler_args={"max_field_size": 65536})
        proxy_app.router.add_route("*", "/{tail:.*}", self.proxy.handle)
        admin_app = web.Application()
        admin_app.router.add_get("/healthz", self._healthz)
        admin_app.router.add_get("/metrics", self._metrics)
        # The proxy port: body-less requests on the fast path (viewer.py), the rest on aiohttp's server.
        proxy_runner = web.AppRunner(
            proxy_app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS
        )
        await proxy_runner.setup()
        self._runners.append(proxy_runner)
        aiohttp_protocol = proxy_runner.server
        assert aiohttp_protocol is not None
        self._listener = await asyncio.get_running_loop().create_server(
            lambda: ViewerConnection(self.proxy, aiohttp_protocol), host, port
        )
        admin_runner = web.AppRunner(
            admin_app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS
        )
        await admin_runner.setup()
        await web.TCPSite(admin_runner, admin_host, admin_port).start()
        self._runners.append(admin_runner)
        return _Ports(int(self._listener.sockets[0].getsockname()[1]), _bound_port(admin_runner))

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.proxy.close()
        for runner in reversed(self._runners):
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        staleness = self.watch.staleness_seconds()
        keys = await asyncio.get_running_loop().run_in_executor(None, self._config.verifier.keys_available)
        if staleness > self._config.max_revocation_staleness_seconds:
            status = "revocations_unavailable"
        else:
            status = "ok" if keys else "origin_keys_unavailable"
        healthy = status == "ok"
        body = {
            "status": status,
            "revocation_feed_staleness_seconds": round(staleness, 3) if staleness != float("inf") else None,
            "origin_keys_available": keys,
            "open_streams": self.proxy.open_streams,
        }
        return web.Response(
            status=200 if healthy else 503, text=json.dumps(body), content_type="application/json"
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("the server is not listening")


async def serve(
    config: IngressConfig,
    host: str,
    port: int,
    admin_port: int,
    on_started: Callable[[int, int], Awaitable[None] | None] | None = None,
    admin_host: str | None = None,
) -> None:
    """Serve until cancelled (the admin server on ``admin_host``, by default ``host``)."""
    ingress = _Ingress(config)
    try:
        ports = await ingress.start(host, port, admin_host or host, admin_port)
        if on_started is not None:
            started = on_started(ports.port, ports.admin_port)
            if started is not None:
                await started
        await asyncio.Event().wait()
    finally:
        await ingress.stop()


class RunningIngress:
    """An ingress serving on a thread of its own; :meth:`stop` ends it and waits."""

    def __init__(
        self,
        port: int,
        admin_port: int,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        main: asyncio.Future[None],
    ) -> None:
        self.port = port
        self.admin_port = admin_port
        self._loop = loop
        self._thread = thread
        self._main = main

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._main.cancel)
            self._thread.join(timeout=_SHUTDOWN_SECONDS * 2)


def start_in_thread(
    config: IngressConfig, host: str = "127.0.0.1", port: int = 0, admin_port: int = 0
) -> RunningIngress:
    """Start an ingress on a new thread; returns once it listens (raises what its start raised)."""
    loop = new_event_loop()
    ready = threading.Event()
    bound: list[int] = []
    failure: list[BaseException] = []
    main: list[asyncio.Future[None]] = []

    def started(proxy_port: int, bound_admin_port: int) -> None:
        bound.extend((proxy_port, bound_admin_port))
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(serve(config, host, port, admin_port, started))
        main.append(task)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        except BaseException as error:  # reported to the caller of start_in_thread
            failure.append(error)
        finally:
            ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="preview-ingress", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    return RunningIngress(bound[0], bound[1], loop, thread, main[0])
