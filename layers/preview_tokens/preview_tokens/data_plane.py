"""Wiring shared by the authorizer and the exchange: one gate per cold start, from settings."""

from __future__ import annotations

from functools import cache

from preview_tokens.access import PreviewGate
from preview_tokens.origin_assertion import ORIGIN_KEY_SET, OriginAssertionSigner, origin_key_context
from preview_tokens.settings import data_plane_settings
from preview_tokens.signing_keys import DynamoDbSigningKeyStore, KmsKeyDecrypter, SigningKeyProvider


@cache
def preview_gate() -> PreviewGate:
    settings = data_plane_settings()
    decrypter = KmsKeyDecrypter()
    keys = SigningKeyProvider(
        DynamoDbSigningKeyStore(settings.signing_keys.table),
        decrypter,
        settings.signing_keys.refresh_seconds,
    )
    origin_keys = SigningKeyProvider(
        DynamoDbSigningKeyStore(settings.signing_keys.table, key_set=ORIGIN_KEY_SET),
        decrypter,
        settings.signing_keys.refresh_seconds,
        context_for=origin_key_context,
    )
    assertions = OriginAssertionSigner(origin_keys, settings.origin_audience)
    return PreviewGate(keys, settings.input_path_prefix, assertions=assertions)
