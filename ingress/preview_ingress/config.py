"""What one ingress serves and whom it believes: :class:`IngressConfig`.

One sandbox per host (``upstream`` + ``sandbox_id``) or a shared ingress that finds each
sandbox's app from a template (``upstream_template`` with ``{sandbox}``) or a resolver
(``upstream_resolver``, Python API only), the sandbox id taken from the ``Host`` header's first
label. Everything is checked when the config is built: a bad one fails at start, not on a request.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from preview_origin.verifier import OriginAssertionVerifier
from preview_tokens.control_plane.revocations import RevocationSource

SECRET_HEADER = "X-Preview-Ingress-Secret"
SANDBOX_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MIN_SECRET_LENGTH = 16
# The brief's bound: a revocation is in force within 5 s on HTTP and on open streams.
MAX_POLL_SECONDS = 5.0


class IngressConfigError(ValueError):
    """The configuration cannot work; the message says which setting."""


@dataclass(frozen=True)
class IngressConfig:
    secret: str = field(repr=False)
    """The value CloudFront sends in ``X-Preview-Ingress-Secret`` (an origin custom header)."""
    verifier: OriginAssertionVerifier
    revocation_feed: RevocationSource | None
    """The data plane's revocation feed (``RevocationFeed(RevocationsTableName)``). ``None`` only
    with ``revocations_disabled``: then nothing is revoked before ``exp`` (local experiments)."""
    upstream: str | None = None
    sandbox_id: str | None = None
    upstream_template: str | None = None
    upstream_resolver: Callable[[str], str | None] | None = None
    """Sandbox id → its app's base URL, or ``None`` for a sandbox this ingress does not serve."""
    input_path_prefix: str = "/input"
    default_frame_ancestors: str = "'none'"
    """``frame-ancestors`` for responses whose assertion has no ``fa`` (and for refusals before one)."""
    revocation_poll_seconds: float = 2.0
    max_revocation_staleness_seconds: float = 10.0
    """Past this without a successful poll every request is refused (503) and every stream closed."""
    revocations_disabled: bool = False
    upstream_connect_timeout_seconds: float = 10.0
    upstream_pool_size: int = 256
    """Idle keep-alive connections kept per app (busy ones are not limited: a stream holds one)."""
    preserve_host: bool = False
    """Send the app the ``Host`` the viewer used (the preview host), and its ``Origin`` as sent,
    instead of the upstream's own. Off: dev servers that guard their Host (Vite's ``allowedHosts``)
    and apps that compare ``Origin`` with ``Host`` (Jupyter, Streamlit, Django) both work stock. On:
    for an app that writes absolute URLs from ``Host`` into its pages, or whose checks go by
    ``X-Forwarded-Host`` (Rails: its host authorization and form-post ``Origin`` check)."""
    preserve_host_for: tuple[str, ...] = ()
    """:attr:`preserve_host` for the sandboxes whose id matches one of these patterns (``fnmatch``,
    case-sensitive: ``rails-*``): a shared ingress whose apps differ (Rails beside Vite)."""
    keep_app_cookies: bool = False
    """Relay the app's ``Set-Cookie`` as it wrote it. Off (the default): each becomes a host-only,
    partitioned cross-site cookie (``Secure; SameSite=None; Partitioned``, no ``Domain``), the only
    kind a browser keeps in a frame on another site, so the app's sessions and CSRF cookies work
    in the frame as on localhost, and no sandbox sets a cookie for another's host."""
    next_secret: str | None = field(default=None, repr=False)
    """Also accepted while CloudFront's origin header moves to it (a rotation without downtime)."""
    upstream_ca_file: str | None = None
    """A PEM bundle of the CAs the apps' ``https`` certificates are checked against, instead of the
    system's (an app with a certificate of the fleet's own CA). Never unchecked."""
    access_log: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    """Where each access-log line (compact JSON) goes, straight: the CLI's is its stderr, buffered up
    to 0.1 s (:mod:`preview_ingress.access_log`). ``None``: the ``preview_ingress``
    logger at ``INFO``."""
    _tls: ssl.SSLContext | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for secret in (self.secret, self.next_secret or self.secret):
            if len(secret) < MIN_SECRET_LENGTH or not secret.isascii() or not secret.isprintable():
                raise IngressConfigError(
                    f"an ingress secret is at least {MIN_SECRET_LENGTH} printable ASCII characters"
                )
        forms = (self.upstream, self.upstream_template, self.upstream_resolver)
        if sum(form is not None for form in forms) != 1:
            raise IngressConfigError(
                "give exactly one of upstream (with sandbox_id), upstream_template and upstream_resolver"
            )
        if self.upstream is not None:
            if not self.sandbox_id or not SANDBOX_LABEL.match(self.sandbox_id):
                raise IngressConfigError("upstream needs sandbox_id, a lower-case DNS label")
            _check_base_url(self.upstream, "upstream")
        elif self.sandbox_id is not None:
            raise IngressConfigError("a shared ingress takes the sandbox from the Host, not sandbox_id")
        if self.upstream_template is not None:
            if "{sandbox}" not in self.upstream_template:
                raise IngressConfigError("upstream_template must contain {sandbox}")
            _check_base_url(self.upstream_template.replace("{sandbox}", "sbx"), "upstream_template")
        if any(not pattern for pattern in self.preserve_host_for):
            raise IngressConfigError("a preserve_host_for pattern is empty")
        if not self.default_frame_ancestors.strip() or any(
            c in self.default_frame_ancestors for c in ";,\r\n"
        ):
            raise IngressConfigError(
                "default_frame_ancestors (--default-frame-ancestors) is one CSP source list: no ';' or ','"
            )
        if not self.input_path_prefix.startswith("/"):
            raise IngressConfigError("input_path_prefix must start with /")
        if not 0 < self.revocation_poll_seconds <= MAX_POLL_SECONDS:
            raise IngressConfigError(f"revocation_poll_seconds must be in (0, {MAX_POLL_SECONDS}]")
        if self.max_revocation_staleness_seconds <= self.revocation_poll_seconds:
            raise IngressConfigError("max_revocation_staleness_seconds must exceed the poll interval")
        if self.revocation_feed is None and not self.revocations_disabled:
            raise IngressConfigError("a revocation feed is required (or revocations_disabled=True)")
        if self.upstream_ca_file is not None:  # a missing or unreadable bundle fails here, not on a request
            try:
                tls = ssl.create_default_context(cafile=self.upstream_ca_file)
            except (OSError, ssl.SSLError) as error:
                raise IngressConfigError(f"upstream_ca_file {self.upstream_ca_file}: {error}") from None
            object.__setattr__(self, "_tls", tls)  # loaded once (frozen: set here only)

    def upstream_tls(self) -> ssl.SSLContext | None:
        """The TLS settings for ``https`` apps: ``None`` for the system's CAs, else ``upstream_ca_file``'s."""
        return self._tls

    def preserves_host(self, sandbox_id: str) -> bool:
        """Whether the sandbox's app gets the viewer's ``Host`` and ``Origin`` (:attr:`preserve_host`,
        :attr:`preserve_host_for`)."""
        return self.preserve_host or any(
            fnmatchcase(sandbox_id, pattern) for pattern in self.preserve_host_for
        )

    def upstream_for(self, sandbox_id: str) -> str | None:
        """The base URL (no trailing slash) of the sandbox's app; ``None`` when it is not served here."""
        if self.upstream is not None:
            return self.upstream.rstrip("/")
        if self.upstream_template is not None:
            return self.upstream_template.replace("{sandbox}", sandbox_id).rstrip("/")
        assert self.upstream_resolver is not None
        base = self.upstream_resolver(sandbox_id)
        return base.rstrip("/") if base else None


def _check_base_url(url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IngressConfigError(f"{name} must be an http(s) URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise IngressConfigError(f"{name} must be an origin (the request's path is appended as sent)")
