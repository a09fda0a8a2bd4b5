"""Which pages may frame a sandbox's previews: its tenant's declared origins, else the default.

The exchange signs the answer into the origin assertion (claim ``fa``), for the fleet ingress to
set as CSP ``frame-ancestors`` on every response of any status, and the denial page sets it on
itself: CloudFront runs no viewer-response function on a status of 400 or more (issue 13), so
nothing downstream of the edge could add it. Sandbox -> tenant (sandboxes table) -> declared
origins (tenants table, ``preview-tokens tenant frame-ancestors``), each remembered for
``ttl_seconds`` per warm function. A read that fails raises (the caller decides: the exchange
fails closed, the denial page falls back to the default).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from preview_tokens.control_plane.sandboxes import SandboxRepository, is_sandbox_id
from preview_tokens.control_plane.tenants import TenantRepository


class TenantFrameAncestors:
    def __init__(
        self,
        tenants: TenantRepository,
        sandboxes: SandboxRepository,
        default: str,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants = tenants
        self._sandboxes = sandboxes
        self._default = default
        self._ttl = ttl_seconds
        self._clock = clock
        self._by_tenant: dict[str, tuple[float, str]] = {}
        self._by_sandbox: dict[str, tuple[float, str | None]] = {}

    @property
    def default(self) -> str:
        return self._default

    def for_tenant(self, tenant_id: str) -> str:
        """The tenant's source list (its origins space-separated), else the default."""
        now = self._clock()
        cached = self._by_tenant.get(tenant_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        tenant = self._tenants.get(tenant_id)
        ancestors = " ".join(tenant.frame_ancestors) if tenant and tenant.frame_ancestors else self._default
        self._by_tenant[tenant_id] = (now, ancestors)
        return ancestors

    def for_sandbox(self, sandbox_id: str) -> str:
        """The source list of the sandbox's tenant; the default for an unknown sandbox."""
        if not is_sandbox_id(sandbox_id):
            return self._default
        now = self._clock()
        cached = self._by_sandbox.get(sandbox_id)
        if cached is not None and now - cached[0] < self._ttl:
            tenant_id = cached[1]
        else:
            sandbox = self._sandboxes.get(sandbox_id)
            tenant_id = sandbox.tenant_id if sandbox is not None else None
            self._by_sandbox[sandbox_id] = (now, tenant_id)
        return self._default if tenant_id is None else self.for_tenant(tenant_id)
