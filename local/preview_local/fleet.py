"""The local sandbox fleet: one real fleet ingress (``preview_ingress``) per app, in this process.

Each app (the demo sandbox app, the desktop, every ``PREVIEW_LOCAL_APPS`` / ``--app`` entry) gets
the one-sandbox-per-host form of the ingress (``upstream`` + ``sandbox_id``), configured as a
platform team configures theirs: the secret CloudFront sends as its origin custom header, the
origin keys the control plane publishes (fetched over HTTP from ``/api/v1/origin-keys``, as a
fleet fetches them), the data plane's audience, the revocation feed (the ``RevocationsTable``,
read by the ingress itself), the tenant default ``frame-ancestors`` and the input path prefix.
The local CloudFront (:mod:`preview_local.front_door`) sends each sandbox's allowed requests to
its ingress, as ``cf.selectRequestOriginById('fleet-ingress')`` does in AWS.
"""

from __future__ import annotations

import logging
import secrets
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from preview_ingress import IngressConfig, RunningIngress, start_in_thread
from preview_origin import HttpJwks, OriginAssertionVerifier
from preview_tokens.control_plane.revocations import RevocationFeed


@dataclass(frozen=True)
class FleetSettings:
    origin_keys_url: str
    audience: str
    revocations_table: str
    input_path_prefix: str
    frame_ancestors: str
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    """What CloudFront's origin custom header carries: a new one at every start."""
    upstream_ca_file: str | None = None
    """The CAs ``https`` apps are checked against (``--app-ca-file``); ``None``: the system's."""
    preserve_host: frozenset[str] = frozenset()
    """The apps whose ingress keeps the viewer's ``Host`` and ``Origin`` (``--app-preserve-host``)."""


INGRESS_LOGGER = "preview_ingress"


def log_to_stderr() -> None:
    """The ingresses' one line per request or stream, on the stack's stderr as ``[ingress] {...}``."""
    logger = logging.getLogger(INGRESS_LOGGER)
    if not any(getattr(handler, "preview_local", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[ingress] %(message)s"))
        handler.preview_local = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class LocalFleet:
    """``sandbox id -> running ingress`` for every app; :meth:`stop` ends them all.

    A sandbox the operator creates while the stack runs (``preview-tokens sandbox put``) has no app
    of its own: the first request the edge lets through for it starts an ingress in front of
    ``default_upstream`` (the demo app), as the seeded sandboxes have. Only a valid session for the
    sandbox gets that far, so nothing else starts one.
    """

    def __init__(self, settings: FleetSettings, default_upstream: str | None = None) -> None:
        self.settings = settings
        self.default_upstream = default_upstream
        self._running: dict[str, RunningIngress] = {}
        self._lock = threading.Lock()
        self._verifier = OriginAssertionVerifier(HttpJwks(settings.origin_keys_url), settings.audience)
        self._feed = RevocationFeed(settings.revocations_table)
        log_to_stderr()

    def start(self, apps: Mapping[str, str]) -> LocalFleet:
        for sandbox_id, upstream in apps.items():
            self._start_one(sandbox_id, upstream)
        return self

    def _start_one(self, sandbox_id: str, upstream: str) -> RunningIngress:
        config = IngressConfig(
            secret=self.settings.secret,
            verifier=self._verifier,
            revocation_feed=self._feed,
            upstream=upstream,
            sandbox_id=sandbox_id,
            input_path_prefix=self.settings.input_path_prefix,
            default_frame_ancestors=self.settings.frame_ancestors,
            upstream_ca_file=self.settings.upstream_ca_file,
            preserve_host=sandbox_id in self.settings.preserve_host,
        )
        running = start_in_thread(config)
        self._running[sandbox_id] = running
        return running

    def port(self, sandbox_id: str) -> int | None:
        with self._lock:
            running = self._running.get(sandbox_id)
            if running is None and self.default_upstream is not None:
                running = self._start_one(sandbox_id, self.default_upstream)
        return None if running is None else running.port

    def admin_port(self, sandbox_id: str) -> int | None:
        with self._lock:
            running = self._running.get(sandbox_id)
        return None if running is None else running.admin_port

    def stop(self) -> None:
        """Stop every ingress at once: each may wait out its shutdown grace for open streams."""
        with self._lock:
            running, self._running = list(self._running.values()), {}
        if running:
            with ThreadPoolExecutor(max_workers=len(running)) as pool:
                list(pool.map(lambda ingress: ingress.stop(), running))
