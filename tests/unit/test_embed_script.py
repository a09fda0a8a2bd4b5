"""The embed helper as integrators pin it: the README's SRI hash and version match the shipped file."""

from __future__ import annotations

import base64
import hashlib
import re

from preview_local.cfn_template import PROJECT_ROOT
from preview_local.embed_script import EMBED_SCRIPT_FILE, embed_script

README = PROJECT_ROOT / "README.md"


def test_the_readme_pins_the_shipped_helper_by_version_and_integrity_hash() -> None:
    shipped = EMBED_SCRIPT_FILE.read_bytes()
    digest = "sha384-" + base64.b64encode(hashlib.sha384(shipped).digest()).decode()
    readme = README.read_text(encoding="utf-8")

    pinned = re.findall(
        r'src="[^"]*preview-embed-([0-9.]+)\.js"\s+integrity="(sha384-[A-Za-z0-9+/=]+)"', readme
    )

    assert pinned, "the README shows no <script src=...preview-embed-<version>.js integrity=...>"
    assert pinned == [(embed_script().version, digest)], (
        f"README is stale: the shipped helper is version {embed_script().version}, {digest}"
    )


def test_the_local_stack_serves_the_helper_at_its_versioned_path_with_that_hash() -> None:
    script = embed_script()
    assert script.path == f"/embed/preview-embed-{script.version}.js"
    assert (
        script.integrity
        == "sha384-" + base64.b64encode(hashlib.sha384(EMBED_SCRIPT_FILE.read_bytes()).digest()).decode()
    )
    assert f'var VERSION = "{script.version}";' in script.text
