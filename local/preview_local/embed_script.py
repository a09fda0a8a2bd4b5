"""The embed helper integrators ship (``docs/embed/preview-embed.js``), as the local stack serves it.

It is served at a versioned path, ``/embed/preview-embed-<VERSION>.js``, with its Subresource
Integrity hash: the demo page loads it exactly as the README tells integrators to.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from functools import cache

from preview_local.cfn_template import PROJECT_ROOT

EMBED_SCRIPT_FILE = PROJECT_ROOT / "docs" / "embed" / "preview-embed.js"
PATH_PREFIX = "/embed/"
_VERSION = re.compile(r'^  var VERSION = "(\d+\.\d+\.\d+)";$', re.M)


@dataclass(frozen=True)
class EmbedScript:
    version: str
    text: str = field(repr=False)

    @property
    def path(self) -> str:
        return f"{PATH_PREFIX}preview-embed-{self.version}.js"

    @property
    def integrity(self) -> str:
        """The ``integrity`` attribute value (SHA-384, as browsers and the README use)."""
        return "sha384-" + base64.b64encode(hashlib.sha384(self.text.encode("utf-8")).digest()).decode()


@cache
def embed_script() -> EmbedScript:
    text = EMBED_SCRIPT_FILE.read_text(encoding="utf-8")
    match = _VERSION.search(text)
    if match is None:
        raise RuntimeError(f"{EMBED_SCRIPT_FILE} declares no VERSION")
    return EmbedScript(match.group(1), text)
