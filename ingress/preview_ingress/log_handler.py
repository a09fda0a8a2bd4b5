"""The log handler of a process that is an ingress (the CLI, the bench): lines written many at once.

On a small GET a ``LogRecord`` and the handler chain per access line cost a sixth of the ingress's
time (an interleaved A/B with the sockets faked: 149 against 122 µs per request); written once per
turn of the event loop, the lines still cost a ``write`` every three or four GETs and a turn of
the loop that waits for nothing (``strace -c``, 3,000 GETs: 851 writes and 1,478 ``epoll_pwait``,
against 27 and 792 buffered as here). Not compiled by mypyc (``ingress/setup.py``): logging keeps
weak references to its handlers, which a native class cannot have.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TextIO

FLUSH_SECONDS = 0.1
"""How long an access line may wait to be written (nginx's ``access_log ... buffer= flush=``)."""
MAX_BUFFERED_LINES = 256
"""Access lines written at once when this many wait (about 80 KB), whatever their age."""


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
    handler.addFilter(_library_record_as_a_line)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    return handler


def _library_record_as_a_line(record: logging.LogRecord) -> bool:
    """A record of aiohttp or asyncio (aiohttp's "Error handling request", with a traceback whose
    frames hold the viewer's bytes) becomes one JSON line with its logger, level and exception type:
    the log stays one JSON object per line, and nothing a viewer sent is written."""
    if not record.name.startswith(("aiohttp", "asyncio")):
        return True
    line: dict[str, str] = {"event": "library_log", "logger": record.name, "level": record.levelname}
    if record.exc_info and record.exc_info[0] is not None:
        line["error_type"] = record.exc_info[0].__name__
    record.msg, record.args = json.dumps(line), None
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    return True


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes many lines at once: access lines within :data:`FLUSH_SECONDS`,
    other records at the end of the loop's turn.

    A loaded ingress logs a line per request: one ``write(2)`` and flush a line were a fifth of its
    system calls per small GET, and one per turn of its loop still one every few requests, with a
    turn of the loop each that waits for nothing. An access line (:meth:`write_line`) logged on the
    loop's thread waits at most :data:`FLUSH_SECONDS`, or less once :data:`MAX_BUFFERED_LINES`
    wait; a record (``listening``, a warning, an error) at most until the loop's next turn
    (``call_soon``), and takes the access lines before it along, in order. A line logged with no
    loop running (another thread, before or after the loop) is written at once, with any still
    waiting before it. ``logging.shutdown`` (at exit) flushes what is left.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_next_turn = False
        self._flush_timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called holding self.lock
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        self._flush_soon(next_turn=True)

    def write_line(self, text: str) -> None:
        """``text`` as one access line, in order with the records emitted."""
        with self.lock:  # type: ignore[union-attr]  # an RLock: emit's caller holds it too
            self._pending.append(text + self.terminator)
            self._flush_soon(next_turn=len(self._pending) >= MAX_BUFFERED_LINES)

    def _flush_soon(self, next_turn: bool) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if next_turn:
            if not self._flush_next_turn:
                self._flush_next_turn = True
                loop.call_soon(self.flush)
        elif self._flush_timer is None and not self._flush_next_turn:
            self._flush_timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_next_turn = False
            self._flush_timer = None  # not cancelled (this may be another thread): it writes what waits then
            lines, self._pending = "".join(self._pending), []
            try:
                if lines:
                    self.stream.write(lines)
                self.stream.flush()
            except Exception:  # as StreamHandler.emit: a log line never fails the caller
                self.handleError(logging.makeLogRecord({"msg": "access log lines not written"}))
