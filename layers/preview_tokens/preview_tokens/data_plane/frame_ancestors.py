"""A tenant's frame ancestors: the origins whose pages may frame the tenant's previews.

Declared by the operator (``preview-tokens tenant frame-ancestors``), kept on the tenant item and
in the edge store (``fa.<tenant_id>``), from where the viewer-response function puts them in
``Content-Security-Policy: frame-ancestors`` on every response of the tenant's sandbox hosts.

Strictly origins, nothing else a CSP source list could hold (no ``*``, no bare scheme, no
``'self'``, no path): ``https://<host>[:<port>]`` or a wildcard subdomain
``https://*.<host>[:<port>]`` (the wildcard stands for one or more labels, as CSP defines it,
never for a whole registrable domain: ``https://*.com`` is refused). Plain ``http`` only for
loopback names, and only where the caller allows it (the local stack). At most
:data:`MAX_FRAME_ANCESTORS`, and the whole list must fit one edge store value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from preview_tokens.data_plane.edge_store import MAX_VALUE_BYTES

MAX_FRAME_ANCESTORS = 16
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HTTPS_ORIGIN = re.compile(
    rf"^https://(?P<wildcard>\*\.)?(?P<host>{_LABEL}(?:\.{_LABEL})+)(?::(?P<port>\d{{1,5}}))?$"
)
_LOCAL_HTTP_ORIGIN = re.compile(
    rf"^http://(?P<host>127\.0\.0\.1|(?:\*\.)?(?:{_LABEL}\.)*localhost)(?::(?P<port>\d{{1,5}}))?$"
)


class FrameAncestorsError(ValueError):
    """The declared origins are not acceptable; the message names the first offender."""


def parse_frame_ancestors(origins: Sequence[str], allow_local_http: bool = False) -> tuple[str, ...]:
    """The origins, lower-cased and without duplicates, in the order given; or FrameAncestorsError."""
    if not origins:
        raise FrameAncestorsError("declare at least one origin (or clear the declaration)")
    parsed: list[str] = []
    for raw in origins:
        origin = _parse_origin(raw, allow_local_http)
        if origin not in parsed:
            parsed.append(origin)
    if len(parsed) > MAX_FRAME_ANCESTORS:
        raise FrameAncestorsError(f"at most {MAX_FRAME_ANCESTORS} origins, got {len(parsed)}")
    if len(" ".join(parsed).encode("ascii")) > MAX_VALUE_BYTES:
        raise FrameAncestorsError(f"the origins together must fit in {MAX_VALUE_BYTES} bytes")
    return tuple(parsed)


def _parse_origin(raw: str, allow_local_http: bool) -> str:
    origin = raw.strip().lower()
    shown = ascii(raw)[:80]
    if not origin.isascii():
        raise FrameAncestorsError(f"{shown} is not an ASCII origin (use the punycode xn-- form)")
    https = _HTTPS_ORIGIN.match(origin)
    local = _LOCAL_HTTP_ORIGIN.match(origin)
    if https is None and (local is None or not allow_local_http):
        kind = "https://host[:port] or https://*.host[:port]"
        if allow_local_http:
            kind += ", or http:// on localhost or 127.0.0.1"
        raise FrameAncestorsError(f"{shown} is not an origin of the form {kind}")
    match = https or local
    assert match is not None
    if https is not None and https["host"].rsplit(".", 1)[1].isdigit():
        raise FrameAncestorsError(f"{shown}: name a host by its DNS name, not an IP address")
    port = match["port"]
    if port is not None and not (port[0] != "0" and 0 < int(port) < 65536):
        raise FrameAncestorsError(f"{shown} has an invalid port")
    return origin


def merge_frame_ancestors(policies: Iterable[str], ancestors: str) -> str:
    """The response's CSP without its ``frame-ancestors`` directives, plus ours as its own policy."""
    merged: list[str] = []
    for value in policies:
        for policy in value.split(","):
            kept = [
                directive.strip()
                for directive in policy.split(";")
                if directive.strip() and directive.split()[0].lower() != "frame-ancestors"
            ]
            if kept:
                merged.append("; ".join(kept))
    merged.append(f"frame-ancestors {ancestors}")
    return ", ".join(merged)
