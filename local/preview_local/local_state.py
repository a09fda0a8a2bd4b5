"""The local stack's state directory (``.local/``, git-ignored): what must survive a restart.

The moto server keeps everything in memory, so the stack persists only what a developer
copies around: the demo API keys and JWT (re-registered on each start) and the dev identity
provider's RSA key. Files are readable by their owner only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preview_local.cfn_template import PROJECT_ROOT

STATE_DIR_ENV = "PREVIEW_LOCAL_STATE_DIR"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".local"


@dataclass(frozen=True)
class LocalState:
    directory: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalState:
        directory = Path(env.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR).resolve()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(directory)

    def path(self, name: str) -> Path:
        return self.directory / name

    def read_json(self, name: str) -> dict[str, Any]:
        path = self.path(name)
        if not path.exists():
            return {}
        document = json.loads(path.read_text(encoding="utf-8"))
        return document if isinstance(document, dict) else {}

    def write_json(self, name: str, document: Mapping[str, Any]) -> Path:
        """Replace ``name`` atomically, owner-only."""
        path = self.path(name)
        partial = path.with_suffix(path.suffix + ".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
        partial.replace(path)
        return path
