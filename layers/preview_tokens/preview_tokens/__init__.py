"""Preview tokens: short-lived credentials that let a tenant embed a running sandbox in an iframe.

This package is the Lambda layer shared by the mint API, the data-plane authorizer and the
``?mt=`` exchange, grouped by plane: ``control_plane`` (mint, credentials, revocation, audit),
``data_plane`` (where a request is allowed or denied), ``keys`` (token codec, signing keys, the
small AWS clients) and ``operator`` (CLI, key admin), with ``settings``, ``errors`` and
``observability`` beside them. Modules on the authorizer's path (``keys.tokens``,
``keys.signing_keys``, ``keys.aws_json``, ``data_plane.access``, ``data_plane.denial_page``,
``settings``) import only the standard library so that the authorizer's cold start stays small;
see README "Performance".
"""
