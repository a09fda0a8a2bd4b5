"""Wiring shared by the authorizer and the exchange: one gate per cold start, from settings."""

from __future__ import annotations

from functools import cache

from preview_tokens.control_plane.revocations import RevocationFeed, RevocationFeedError, RevocationView
from preview_tokens.control_plane.sandboxes import SandboxRepository
from preview_tokens.control_plane.tenants import TenantRepository
from preview_tokens.control_plane.token_records import FirstUseRecorder
from preview_tokens.data_plane.access import PreviewGate
from preview_tokens.data_plane.exchange import RenewalRecorder
from preview_tokens.data_plane.origin_assertion import (
    ORIGIN_KEY_SET,
    OriginAssertionSigner,
    origin_key_context,
)
from preview_tokens.data_plane.tenant_frame_ancestors import TenantFrameAncestors
from preview_tokens.keys.signing_keys import DynamoDbSigningKeyStore, KmsKeyDecrypter, SigningKeyProvider
from preview_tokens.observability import count_key_refresh_failure, logger, report_revocation_staleness
from preview_tokens.settings import data_plane_settings, first_use_settings


def _log_refresh_failure(error: RevocationFeedError) -> None:
    logger.warning("revocation view refresh failed", extra={"error_code": str(error)})


@cache
def preview_gate() -> PreviewGate:
    settings = data_plane_settings()
    decrypter = KmsKeyDecrypter()
    keys = SigningKeyProvider(
        DynamoDbSigningKeyStore(settings.signing_keys.table),
        decrypter,
        settings.signing_keys.refresh_seconds,
        on_refresh_failure=count_key_refresh_failure,
    )
    origin_keys = SigningKeyProvider(
        DynamoDbSigningKeyStore(settings.signing_keys.table, key_set=ORIGIN_KEY_SET),
        decrypter,
        settings.signing_keys.refresh_seconds,
        context_for=origin_key_context,
        on_refresh_failure=count_key_refresh_failure,
    )
    ancestors = frame_ancestors()
    assertions = OriginAssertionSigner(
        origin_keys, settings.origin_audience, frame_ancestors=ancestors.for_tenant if ancestors else None
    )
    revocations = RevocationView(
        RevocationFeed(settings.revocations.table),
        refresh_seconds=settings.revocations.refresh_seconds,
        max_staleness_seconds=settings.revocations.max_staleness_seconds,
        on_refresh_failure=_log_refresh_failure,
        on_staleness=report_revocation_staleness,
    )
    return PreviewGate(keys, settings.input_path_prefix, assertions=assertions, revocations=revocations)


@cache
def renewal_recorder() -> RenewalRecorder:
    """Where the exchange's authorizer records renewal links: the revocation table's renewals feed."""
    return RevocationFeed(data_plane_settings().revocations.table).record_renewal


@cache
def frame_ancestors() -> TenantFrameAncestors | None:
    """Tenants' frame-ancestors, when this function may read the tenants and sandboxes (the exchange)."""
    settings = data_plane_settings()
    if settings.tenants_table is None or settings.sandboxes_table is None:
        return None
    return TenantFrameAncestors(
        TenantRepository(settings.tenants_table),
        SandboxRepository(settings.sandboxes_table),
        settings.frame_ancestors,
    )


@cache
def first_use_recorder() -> FirstUseRecorder:
    """The exchange's recorder of first uses (token record + audit trail)."""
    settings = first_use_settings()
    return FirstUseRecorder(settings.preview_tokens_table, settings.audit)
