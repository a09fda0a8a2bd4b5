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

import secrets
from collections.abc import Mapping
from contextlib import ExitStack
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


class LocalFleet:
    """``sandbox id -> running ingress`` for every app; :meth:`stop` ends them all."""

    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self._running: dict[str, RunningIngress] = {}
        self._stack = ExitStack()

    def start(self, apps: Mapping[str, str]) -> LocalFleet:
        verifier = OriginAssertionVerifier(HttpJwks(self.settings.origin_keys_url), self.settings.audience)
        feed = RevocationFeed(self.settings.revocations_table)
        for sandbox_id, upstream in apps.items():
            config = IngressConfig(
                secret=self.settings.secret,
                verifier=verifier,
                revocation_feed=feed,
                upstream=upstream,
                sandbox_id=sandbox_id,
                input_path_prefix=self.settings.input_path_prefix,
                default_frame_ancestors=self.settings.frame_ancestors,
            )
            running = start_in_thread(config)
            self._stack.callback(running.stop)
            self._running[sandbox_id] = running
        return self

    def port(self, sandbox_id: str) -> int | None:
        running = self._running.get(sandbox_id)
        return None if running is None else running.port

    def admin_port(self, sandbox_id: str) -> int | None:
        running = self._running.get(sandbox_id)
        return None if running is None else running.admin_port

    def stop(self) -> None:
        self._stack.close()
