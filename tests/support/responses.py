"""Reading Lambda proxy responses the way a client of API Gateway would see them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: str
    multi_headers: dict[str, list[str]]

    def multi_header(self, name: str) -> list[str]:
        """Every value of a header that may repeat (``Set-Cookie``)."""
        return [
            v for key, values in self.multi_headers.items() if key.lower() == name.lower() for v in values
        ]

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


def from_proxy_result(result: dict[str, Any]) -> HttpResponse:
    headers: dict[str, str] = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    multi: dict[str, list[str]] = {}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        multi[key] = [str(v) for v in values]
        headers[key] = ", ".join(multi[key])
    return HttpResponse(int(result["statusCode"]), headers, result.get("body") or "", multi)
