"""The fleet ingress: the reverse proxy a platform team runs in front of sandbox apps.

It admits only what CloudFront forwards (the ``X-Preview-Ingress-Secret`` origin header) with a
valid origin assertion for the sandbox served, applies the token's scope to HTTP and WebSockets,
follows the revocation feed, and relays everything else to the app as sent, streaming. See
ingress/README.md.

    from preview_ingress import IngressConfig, start_in_thread

    running = start_in_thread(IngressConfig(...), host="127.0.0.1", port=0, admin_port=0)
    ...  # running.port, running.admin_port
    running.stop()
"""

from preview_ingress.build import compiled
from preview_ingress.config import IngressConfig, IngressConfigError
from preview_ingress.server import RunningIngress, serve, start_in_thread

__all__ = ["IngressConfig", "IngressConfigError", "RunningIngress", "compiled", "serve", "start_in_thread"]
