"""The one local address, dispatched by ``Host`` as DNS and CloudFront dispatch it in AWS.

* ``<sandbox-id>.<preview-domain>:PORT`` - the data plane: first what the CloudFront Function
  does (:func:`preview_local.edge.viewer_request`: ``mt`` off the query into ``X-Preview-Token``,
  ``GET ?mt=`` to the exchange), then the preview REST API, then CloudFront's viewer-response
  rule on its answer (:class:`preview_local.viewer_response.ViewerResponse`: no ``__Host-mp_``
  cookie from the origin, the tenant's CSP ``frame-ancestors``).
* ``127.0.0.1:PORT`` / ``localhost:PORT`` - the control plane REST API (``/api/...``), plus
  what exists only locally: the demo embedding page (``/``, ``/demo/...``) and the dev
  identity provider (``/dev-idp/...``). Any other path goes to the control plane API, which
  answers unknown routes as API Gateway does.
"""

from __future__ import annotations

from dataclasses import dataclass

from preview_local.demo_app import PAGE_PATHS, DemoEmbeddingApp
from preview_local.dev_idp import PATH_PREFIX as DEV_IDP_PREFIX
from preview_local.dev_idp import DevIdentityProvider
from preview_local.edge import viewer_request
from preview_local.gateway import RestApiGateway
from preview_local.http_messages import HttpRequest, HttpResponse
from preview_local.viewer_response import ViewerResponse

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})


@dataclass(frozen=True)
class FrontDoor:
    preview_domain: str
    control_plane: RestApiGateway
    data_plane: RestApiGateway
    demo: DemoEmbeddingApp
    identity_provider: DevIdentityProvider
    viewer_response: ViewerResponse

    def respond(self, request: HttpRequest) -> HttpResponse:
        host = request.host_name
        if host.endswith("." + self.preview_domain):
            query_names = [name for name, _ in request.query_items()]
            routed = viewer_request(request)
            response = self.data_plane.handle(routed)
            return self.viewer_response.apply(routed.method, routed.path, query_names, host, response)
        if host in LOOPBACK_NAMES:
            if request.path.startswith(DEV_IDP_PREFIX + "/"):
                return self.identity_provider.respond(request)
            if request.path in PAGE_PATHS or request.path.startswith("/demo/"):
                return self.demo.respond(request)
            return self.control_plane.handle(request)
        return HttpResponse.text(421, f"this local stack serves 127.0.0.1 and *.{self.preview_domain}")
