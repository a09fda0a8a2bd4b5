"""``make bench`` prints its tables and nothing else: no log line, no metric line, no warning.

Each bench calls :func:`silence` first. It turns off, for this process and the cold-start
children it spawns (they inherit the environment), the functions' INFO log lines, their EMF
metric lines (``POWERTOOLS_METRICS_DISABLED``: metrics are an API-less print, so the hot paths
measured are the same), Powertools' "no metrics" warning, and the moto server's request log.
"""

from __future__ import annotations

import logging
import os
import warnings

QUIET_ENVIRONMENT = {
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def silence() -> None:
    os.environ.update(QUIET_ENVIRONMENT)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    logging.getLogger().setLevel(logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from preview_tokens.observability import logger

    logger.setLevel(logging.ERROR)
