"""Preview tokens: short-lived credentials that let a tenant embed a running sandbox in an iframe.

This package is the Lambda layer shared by the mint API, the data-plane authorizer and the
``?mt=`` exchange. Modules on the authorizer's path (``tokens``, ``signing_keys``,
``access``, ``aws_json``, ``settings``, ``denial_page``) import only the standard library so
that the authorizer's cold start stays small; see README "Performance".
"""
