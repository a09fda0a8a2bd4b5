"""``python -m preview_local``: the same as the ``preview-local`` command."""

from __future__ import annotations

import sys

from preview_local.stack import main

sys.exit(main())
