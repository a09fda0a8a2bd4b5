"""The HTTP request and response every part of the local stack passes around, and their log line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from preview_tokens.data_plane.access import normalize_host
from preview_tokens.observability import REDACTED, redact_credentials


def _escaped(char: str) -> str:
    if 0x21 <= ord(char) < 0x7F and char != "\\":
        return char
    return "\\x20" if char == " " else char.encode("unicode_escape").decode("ascii")


def log_field(text: str) -> str:
    """One field of a log line: credential-shaped runs redacted, then every character outside
    printable ASCII (controls, DEL, non-ASCII), the space and the backslash escaped
    (``\\x1b``, ``\\u2028``...), so a field can neither forge a line nor hide what it holds."""
    return "".join(_escaped(char) for char in redact_credentials(text))


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
        """Path and query for a log line, as one escaped field.

        The path is shown decoded (an encoded credential is still recognised) with credential-shaped
        runs redacted; of the query only the decoded parameter names are shown, never a value:
        whatever a client puts there (``mt``, ``m%74``, another name) may be a credential.
        """
        target = unquote(self.path)
        if self.query:
            names = [unquote(part.partition("=")[0].replace("+", " ")) for part in self.query.split("&")]
            target += "?" + "&".join(f"{name}={REDACTED}" for name in names)
        return log_field(target)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = field(default=b"", repr=False)
    log_reason: str | None = field(default=None, compare=False)
    """Why the request was refused, for the request log line only (never sent): the edge's
    denial reason or the authorizer's ``reason``, as the API's access log records
    ``$context.authorizer.reason``."""

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
