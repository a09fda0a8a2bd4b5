"""The control plane: who may mint, the mint itself, revocation, audit and the API's bodies.

A tenant backend calls it with an API key or a JWT (``credentials``, ``api_keys``, ``jwks``,
``tenants``); it mints (``mint``, ``rate_limit``, ``request_body``, ``api_models``), records
(``token_records``, ``audit``) and revokes (``token_lifecycle``, ``revocations``) tokens.
``revocations`` is written here and read by the data plane too (``data_plane.access`` checks
every token against its ``RevocationView``); it imports only the standard library.
"""
