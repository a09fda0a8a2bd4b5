"""Wiring shared by the authorizer and the exchange: one gate per cold start, from settings."""

from __future__ import annotations

from functools import cache

from preview_tokens.access import PreviewGate
from preview_tokens.settings import data_plane_settings
from preview_tokens.signing_keys import DynamoDbSigningKeyStore, KmsKeyDecrypter, SigningKeyProvider


@cache
def preview_gate() -> PreviewGate:
    settings = data_plane_settings()
    keys = SigningKeyProvider(
        DynamoDbSigningKeyStore(settings.signing_keys.table),
        KmsKeyDecrypter(),
        settings.signing_keys.refresh_seconds,
    )
    return PreviewGate(keys, settings.input_path_prefix)
