"""The access-denied page a preview iframe shows, and the event it posts to the embedding page.

One HTML template serves every path: the exchange and the fleet ingress render it in Python,
and API Gateway's static Gateway Responses in ``template.yaml`` are pages rendered from it
(:func:`authorizer_failure_page`, :func:`origin_failure_page`, the ``no_token`` page; a test
keeps them equal). Nothing from the request is ever reflected: every value comes from this
module, plus a sandbox id only when a verified token proved it. The template avoids ``$`` and
``#`` so that API Gateway's Velocity engine leaves it alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from preview_tokens.data_plane.access import DenialReason

EXPIRED_EVENT = "preview.expired"
DENIED_EVENT = "preview.denied"
UNAVAILABLE_EVENT = "preview.unavailable"
# Posted by the exchange's renewal page (a hidden frame of the embed helper): the new session's
# cookies are in the jar the visible preview shares.
RENEWED_EVENT = "preview.renewed"
# Posted by the cookies-blocked page when the user asks to open the preview top-level: only the
# embedding page can mint the fresh ``?mt=`` URL a new tab needs (the embed helper does).
OPEN_IN_NEW_TAB_EVENT = "preview.open_in_new_tab"
_UNAVAILABLE_REASONS = frozenset({DenialReason.UNAVAILABLE, DenialReason.ORIGIN_UNREACHABLE})

_SCRIPT = (
    "(function(){var el=document.getElementById('preview-event');"
    "var event=JSON.parse(el.textContent);"
    "if(window.parent&&window.parent!==window){window.parent.postMessage(event,'*');}})();"
)
# The cookies-blocked page's button (hidden when the page is not framed: there is no one to ask).
_OPEN_IN_NEW_TAB_SCRIPT = (
    "(function(){var button=document.getElementById('open-in-new-tab');"
    "if(!button){return;}if(!window.parent||window.parent===window){button.hidden=true;return;}"
    "button.addEventListener('click',function(){window.parent.postMessage("
    "{type:'" + OPEN_IN_NEW_TAB_EVENT + "',sandbox_id:null,reason:'cookies_blocked'},'*');});})();"
)
_OPEN_IN_NEW_TAB_BUTTON = (
    '<br><button id="open-in-new-tab" type="button" style="margin-top:1rem;padding:.5rem 1rem;'
    'font:inherit;color:white;background:rgb(37,99,235);border:0;border-radius:8px;cursor:pointer">'
    "Open in a new tab</button>"
)


def _script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


SCRIPT_HASH = _script_hash(_SCRIPT)
COOKIES_BLOCKED_SCRIPT_HASH = _script_hash(_SCRIPT + _OPEN_IN_NEW_TAB_SCRIPT)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
html,body{{height:100%;margin:0}}
body{{display:flex;align-items:center;justify-content:center;background:rgb(245,246,248);
font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:rgb(31,41,55)}}
main{{max-width:26rem;padding:2rem;text-align:center;background:white;border-radius:12px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}}
h1{{font-size:1.15rem;margin:0 0 .5rem}}
p{{margin:0;color:rgb(75,85,99)}}
</style></head>
<body><main role="alert"><h1>{title}</h1><p>{detail}</p></main>
<script type="application/json" id="preview-event">{event}</script>
<script>{script}</script>
</body></html>
"""


@dataclass(frozen=True)
class Denial:
    title: str
    detail: str
    event: str


_TEXTS: dict[DenialReason, tuple[str, str]] = {
    DenialReason.EXPIRED: (
        "Preview session expired",
        "This preview has expired. The page that embeds it can open a new one.",
    ),
    DenialReason.NO_TOKEN: ("Preview link invalid", "This address needs a preview link to open."),
    DenialReason.INVALID_TOKEN: ("Preview link invalid", "This preview link is not valid."),
    DenialReason.WRONG_SANDBOX: ("Preview link invalid", "This preview link is for a different sandbox."),
    DenialReason.READ_ONLY: ("View-only preview", "This preview is view-only: input is not allowed."),
    DenialReason.REVOKED: ("Preview revoked", "Access to this preview was revoked."),
    DenialReason.UNAVAILABLE: (
        "Preview unavailable",
        "Previews are unavailable right now. Try again shortly.",
    ),
    DenialReason.COOKIES_BLOCKED: (
        "Cookies blocked",
        "This browser blocks the cookie a preview needs inside another site. It works in a tab of its own.",
    ),
    DenialReason.ORIGIN_UNREACHABLE: (
        "Sandbox not responding",
        "The sandbox did not answer. It may be starting or stopped; try again in a moment.",
    ),
}


def denial_for(reason: DenialReason, sandbox_id: str | None) -> Denial:
    title, detail = _TEXTS[reason]
    if reason is DenialReason.EXPIRED:
        event_type = EXPIRED_EVENT
    elif reason in _UNAVAILABLE_REASONS:
        event_type = UNAVAILABLE_EVENT
    else:
        event_type = DENIED_EVENT
    event = json.dumps({"type": event_type, "sandbox_id": sandbox_id, "reason": reason.value})
    return Denial(title, detail, event.replace("<", "\\u003c").replace(">", "\\u003e"))


def render_page(denial: Denial) -> str:
    return _PAGE.format(title=denial.title, detail=denial.detail, event=denial.event, script=_SCRIPT)


def authorizer_failure_page() -> str:
    """The static page for when the authorizer itself could not answer (no context)."""
    return render_page(denial_for(DenialReason.UNAVAILABLE, None))


def origin_failure_page() -> str:
    """The static page for an origin that refused the connection or did not answer in time."""
    return render_page(denial_for(DenialReason.ORIGIN_UNREACHABLE, None))


def cookies_blocked_page() -> str:
    """The page for a framed preview whose session cookie did not stick, with "Open in a new tab".

    Served with :data:`COOKIES_BLOCKED_SCRIPT_HASH` in its policy (its script has the button).
    """
    denial = denial_for(DenialReason.COOKIES_BLOCKED, None)
    return _PAGE.format(
        title=denial.title,
        detail=denial.detail + _OPEN_IN_NEW_TAB_BUTTON,
        event=denial.event,
        script=_SCRIPT + _OPEN_IN_NEW_TAB_SCRIPT,
    )


def renewed_page(expires_at: int | None) -> str:
    """The renewal's cookie-check page: posts ``preview.renewed`` with the session-ends marker's
    ``exp`` to the helper's hidden frame's parent. Its script is :data:`SCRIPT_HASH`'s."""
    event = json.dumps({"type": RENEWED_EVENT, "sandbox_id": None, "reason": None, "expires_at": expires_at})
    return _PAGE.format(
        title="Preview renewed",
        detail="The preview's session was renewed.",
        event=event.replace("<", "\\u003c").replace(">", "\\u003e"),
        script=_SCRIPT,
    )


def content_security_policy(frame_ancestors: str, script_hash: str = SCRIPT_HASH) -> str:
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src '{script_hash}'; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors {frame_ancestors}"
    )
