"""The apps the local stack fronts: each one a sandbox of the demo tenant, served through the edge.

``PREVIEW_LOCAL_APPS="sbx-app=http://127.0.0.1:5173,sbx-nb=http://127.0.0.1:8888"`` and
``preview-local --app sbx-app=http://127.0.0.1:5173`` (repeatable) name them: a sandbox id (one
DNS label, as the preview host's first label must be) and the app's base URL (``http`` or
``https``, with a host; its path, if any, is ignored: the viewer's path is forwarded as sent).
A later entry for the same id replaces an earlier one, so ``--app`` overrides the environment.

An ``https`` app is checked against the system's CAs; a dev server with a certificate of a local CA
(mkcert's, a self-signed one) is checked against that CA instead with
``PREVIEW_LOCAL_APP_CA_FILE=/path/ca.pem`` or ``--app-ca-file`` (a PEM bundle; a self-signed
certificate is its own CA). The check is never skipped: an app it fails gets the 502 page.

By default each app gets its own ``Host`` (``127.0.0.1:5173``) and the preview host in
``X-Forwarded-Host``, as on localhost. An app that builds its checks on ``X-Forwarded-Host``
(Rails: its host authorization and its form posts' ``Origin`` check) is named in
``PREVIEW_LOCAL_PRESERVE_HOST="sbx-rails,..."`` or ``--app-preserve-host sbx-rails``: its ingress
then runs with ``--preserve-host`` (the viewer's ``Host`` and ``Origin`` as sent).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

APPS_ENV = "PREVIEW_LOCAL_APPS"
APP_CA_FILE_ENV = "PREVIEW_LOCAL_APP_CA_FILE"
PRESERVE_HOST_ENV = "PREVIEW_LOCAL_PRESERVE_HOST"
_SANDBOX_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


class AppSpecError(ValueError):
    """An ``id=URL`` entry that names no usable sandbox id or app URL."""


def parse_apps(specs: Iterable[str]) -> dict[str, str]:
    """``id -> base URL`` (``scheme://host:port``) from comma-separated ``id=URL`` entries."""
    apps: dict[str, str] = {}
    for spec in specs:
        for entry in (part.strip() for part in spec.split(",")):
            if not entry:
                continue
            sandbox_id, equals, url = entry.partition("=")
            sandbox_id, url = sandbox_id.strip(), url.strip()
            if not equals or not _SANDBOX_ID.fullmatch(sandbox_id):
                raise AppSpecError(
                    f"{entry!r} is not ID=URL with ID a sandbox id (lower-case letters, digits, '-')"
                )
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise AppSpecError(f"{entry!r}: the app URL must be http:// or https:// with a host")
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                raise AppSpecError(f"{entry!r}: the app URL has no valid port") from None
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            apps[sandbox_id] = f"{parts.scheme}://{host}:{port}"
    return apps


def preserve_host_ids(specs: Iterable[str], apps: Mapping[str, str]) -> frozenset[str]:
    """The app ids (comma-separated in each of ``specs``) whose ingress keeps the viewer's ``Host``.
    Raises :class:`AppSpecError` for an id that names none of ``apps``."""
    ids = frozenset(entry.strip() for spec in specs for entry in spec.split(",") if entry.strip())
    unknown = sorted(ids - set(apps))
    if unknown:
        raise AppSpecError(
            f"--app-preserve-host {', '.join(unknown)}: not an app of this stack (name it with --app ID=URL)"
        )
    return ids


def app_ca_file(path: str | None) -> str | None:
    """``path`` when it is a PEM bundle of CAs the apps' ``https`` certificates can be checked
    against; ``None`` when unset (the system's CAs). Raises :class:`AppSpecError` naming the file."""
    if not path:
        return None
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise AppSpecError(f"the app CA file {path}: {reason}") from None
    return os.path.abspath(path)
