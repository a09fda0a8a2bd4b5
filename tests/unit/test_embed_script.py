"""The embed helper as integrators pin it: every SRI hash and version the docs show match the shipped file."""

from __future__ import annotations

import base64
import hashlib
import re

from preview_local.cfn_template import PROJECT_ROOT
from preview_local.embed_script import EMBED_SCRIPT_FILE, embed_script

# The pinned <script> tag moved from the README to the embedding docs when the README was split
# (issue 15); wherever a page shows one, it must be the shipped helper's.
DOCS_PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def test_the_docs_pin_the_shipped_helper_by_version_and_integrity_hash() -> None:
    shipped = EMBED_SCRIPT_FILE.read_bytes()
    digest = "sha384-" + base64.b64encode(hashlib.sha384(shipped).digest()).decode()

    pinned = {
        page.relative_to(PROJECT_ROOT).as_posix(): re.findall(
            r'src="[^"]*preview-embed-([0-9.]+)\.js"\s+integrity="(sha384-[A-Za-z0-9+/=]+)"',
            page.read_text(encoding="utf-8"),
        )
        for page in DOCS_PAGES
    }
    pins = [pin for found in pinned.values() for pin in found]

    assert pins, "no docs page shows <script src=...preview-embed-<version>.js integrity=...>"
    stale = {
        page: found
        for page, found in pinned.items()
        if any(pin != (embed_script().version, digest) for pin in found)
    }
    assert not stale, (
        f"stale pins (the shipped helper is version {embed_script().version}, {digest}): {stale}"
    )


def test_the_local_stack_serves_the_helper_at_its_versioned_path_with_that_hash() -> None:
    script = embed_script()
    assert script.path == f"/embed/preview-embed-{script.version}.js"
    assert (
        script.integrity
        == "sha384-" + base64.b64encode(hashlib.sha384(EMBED_SCRIPT_FILE.read_bytes()).digest()).decode()
    )
    assert f'var VERSION = "{script.version}";' in script.text
