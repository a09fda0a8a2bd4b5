"""The edge's viewer-response rule, as CloudFront applies it (``PreviewEdgeResponse`` in template.yaml).

On every response of a sandbox host, before it reaches the browser:

* **The origin cannot set the data plane's cookies.** A ``Set-Cookie`` whose name starts with
  ``__Host-mp_`` (any case) is kept only on the exchange's answer; on any other response it came
  from the sandbox origin and is removed. The exchange's answer is recognised by its request, not
  by anything in the response (which the origin could forge): a GET whose path is the exchange
  path (where the edge routed it, and where API Gateway invokes the exchange Lambda, never the
  origin), or, should CloudFront hand the function the viewer's request as it arrived, a GET
  with ``mt`` in its query outside ``/__preview/`` (the edge routes every such GET to the exchange).
* **Only the tenant's declared origins may frame the preview.** ``Content-Security-Policy`` gets
  ``frame-ancestors`` with the origins of the host's tenant: ``sb.<sandbox-id>`` in the edge store
  names the tenant (written by the operator with the sandbox, so nothing the request carries
  chooses it) and ``fa.<tenant-id>`` its origins; with none declared (or an unknown host) the
  stack's ``FrameAncestors`` default applies. A ``frame-ancestors`` directive the origin sent is
  removed from its policies (their other directives are kept) and ``X-Frame-Options`` is dropped,
  so the declared list is exactly what the browser enforces. Every response gets it, not only
  ``text/html``: a browser may render an untyped response as a document.

The local stack applies :meth:`ViewerResponse.apply` to every preview response; a test runs the
JavaScript function (node) and this mirror on the same cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from preview_tokens.data_plane.access import is_data_plane_cookie
from preview_tokens.data_plane.edge_store import frame_ancestors_entry, sandbox_tenant_entry
from preview_tokens.data_plane.exchange import EXCHANGE_PATH, TOKEN_PARAMETER
from preview_tokens.data_plane.frame_ancestors import merge_frame_ancestors

from preview_local.http_messages import HttpResponse

RESERVED_PREFIX = "/__preview/"
_SANDBOX_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def from_exchange(method: str, path: str, query_names: Iterable[str]) -> bool:
    """Whether this request's answer is the exchange's (the one that may set our cookies)."""
    if method != "GET":
        return False
    if path == EXCHANGE_PATH or path.startswith(EXCHANGE_PATH + "/"):
        return True
    return not path.startswith(RESERVED_PREFIX) and TOKEN_PARAMETER in set(query_names)


def frame_ancestors_for(host_name: str, lookup: Callable[[str], str | None], default: str) -> str:
    """The declared origins of the host's tenant, else ``default``."""
    label = host_name.lower().split(".", 1)[0]
    if not _SANDBOX_LABEL.match(label):
        return default
    tenant_id = lookup(sandbox_tenant_entry(label))
    if tenant_id is None:
        return default
    return lookup(frame_ancestors_entry(tenant_id)) or default


@dataclass(frozen=True)
class ViewerResponse:
    lookup: Callable[[str], str | None]
    """Reads the edge store (``EdgeStore.get``), as the function reads its KeyValueStore."""
    default_frame_ancestors: str

    def apply(
        self, method: str, path: str, query_names: Iterable[str], host_name: str, response: HttpResponse
    ) -> HttpResponse:
        keep_our_cookies = from_exchange(method, path, query_names)
        ancestors = frame_ancestors_for(host_name, self.lookup, self.default_frame_ancestors)
        policies = [value for name, value in response.headers if name.lower() == "content-security-policy"]
        headers = [
            (name, value)
            for name, value in response.headers
            if name.lower() not in ("content-security-policy", "x-frame-options")
            and (keep_our_cookies or name.lower() != "set-cookie" or not is_data_plane_cookie(value))
        ]
        headers.append(("Content-Security-Policy", merge_frame_ancestors(policies, ancestors)))
        return HttpResponse(response.status, tuple(headers), response.body)
