"""The data plane: where a request for a sandbox is let through or denied.

``access`` is the decision (host binding, expiry, scope, revocation), ``exchange`` turns
``?mt=`` into the session cookie, ``denial_page`` is what a denied viewer sees,
``origin_assertion`` is what the sandbox's origin receives, ``frame_ancestors`` and
``edge_store`` are the edge's rules and their store, and ``wiring`` builds one gate per cold
start. Modules on the authorizer's path import only the standard library (README "Performance").
"""
