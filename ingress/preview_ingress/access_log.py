"""The access log: one JSON line per request or stream (ingress/README.md "Logs, metrics, health").

The lines go to the ``preview_ingress`` logger at ``INFO``, so a program that embeds the ingress
(the local stack, the tests) receives them through whatever handlers it sets up. A process that
*is* an ingress (the CLI, the bench) sets :attr:`IngressConfig.access_log
<preview_ingress.config.IngressConfig.access_log>` to the ``write_line`` of the handler
:func:`log_to` returns: each line then goes straight to that stream, written together with the
others of the same turn of the event loop, with no ``LogRecord`` and no handler chain. On a small
GET those two cost a sixth of the ingress's time (an interleaved A/B with the sockets faked: 149
against 122 µs per request). The line is the same either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TextIO

logger = logging.getLogger("preview_ingress")

_encode = json.JSONEncoder(separators=(",", ":")).encode


def write(line: Mapping[str, Any], sink: Callable[[str], None] | None) -> None:
    """One access-log line, ``line`` as compact JSON: to ``sink``, else to the logger."""
    if sink is not None:
        sink(_encode(line))
    elif logger.isEnabledFor(logging.INFO):
        logger.info(_encode(line))


def log_to(stream: TextIO) -> LoopBatchedHandler:
    """Log lines on ``stream``, for a process that is an ingress (the bench); its ``write_line`` is
    the access log's sink."""
    return install(LoopBatchedHandler(stream))


def install(handler: LoopBatchedHandler) -> LoopBatchedHandler:
    """``handler`` as the process's one log handler, for a process that is an ingress (the CLI, once
    its configuration holds). Records skip what the lines never show: the caller's frame, thread
    and process names (the logging HOWTO's "Optimization")."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    return handler


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes every line of one turn of the event loop at once.

    A loaded ingress logs a line per request, many per turn of its loop: one ``write(2)`` and
    flush a line were a fifth of its system calls per small GET. A line logged on the loop's thread
    waits at most until the loop's next turn (``call_soon``), so nothing is held while the ingress
    is idle; a line logged with no loop running (another thread, before or after the loop) is
    written at once, with any still waiting before it. ``logging.shutdown`` (at exit) flushes what
    is left.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_scheduled = False

    def emit(self, record: logging.LogRecord) -> None:  # called holding self.lock
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        self._flush_soon()

    def write_line(self, text: str) -> None:
        """``text`` as one line, in order with the records emitted."""
        with self.lock:  # type: ignore[union-attr]  # an RLock: emit's caller holds it too
            self._pending.append(text + self.terminator)
            self._flush_soon()

    def _flush_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_scheduled = False
            lines, self._pending = "".join(self._pending), []
            try:
                if lines:
                    self.stream.write(lines)
                self.stream.flush()
            except Exception:  # as StreamHandler.emit: a log line never fails the caller
                self.handleError(logging.makeLogRecord({"msg": "access log lines not written"}))
