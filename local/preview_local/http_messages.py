"""The HTTP request and response every part of the local stack passes around, and their log line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_plus

from preview_tokens.access import TOKEN_PARAMETER, normalize_host

REDACTED = "[redacted]"


def last_header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The last value of header ``name`` (compared case-insensitively), or ``None``."""
    found = None
    for key, value in headers:
        if key.lower() == name.lower():
            found = value
    return found


@dataclass(frozen=True)
class HttpRequest:
    """One request as a client sent it: the path and the raw query are kept apart and undecoded."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(default=b"", repr=False)
    client_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        """The last value of a header, its name compared case-insensitively."""
        return last_header(self.headers, name)

    @property
    def host(self) -> str:
        return self.header("Host") or ""

    @property
    def host_name(self) -> str:
        """The Host header without its port, lower-cased (as the authorizer compares hosts)."""
        return normalize_host(self.host)

    def query_items(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)

    def json_body(self) -> object:
        return json.loads(self.body or b"null")

    def log_target(self) -> str:
        """Path and query for a log line: every ``mt`` value (its name decoded) is replaced."""
        if not self.query:
            return self.path
        parts = []
        for part in self.query.split("&"):
            name = part.partition("=")[0]
            parts.append(f"{name}={REDACTED}" if unquote_plus(name) == TOKEN_PARAMETER else part)
        return f"{self.path}?{'&'.join(parts)}"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        return last_header(self.headers, name)

    @classmethod
    def json(cls, status: int, document: object, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
        body = json.dumps(document).encode("utf-8")
        return cls(
            status, (("Content-Type", "application/json"), ("Cache-Control", "no-store"), *headers), body
        )

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> HttpResponse:
        return cls(
            status, (("Content-Type", content_type), ("Cache-Control", "no-store")), text.encode("utf-8")
        )
