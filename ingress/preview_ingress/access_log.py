"""The access log: one JSON line per request or stream (ingress/README.md "Logs, metrics, health").

The lines go to the ``preview_ingress`` logger at ``INFO``, so a program that embeds the ingress
(the local stack, the tests) receives them through whatever handlers it sets up. A process that
*is* an ingress (the CLI, the bench) sets :attr:`IngressConfig.access_log
<preview_ingress.config.IngressConfig.access_log>` to the ``write_line`` of the handler
:func:`log_to` returns: each line then goes straight to that stream, buffered for at most
:data:`FLUSH_SECONDS` (or :data:`MAX_BUFFERED_LINES` lines) and written with the others, with no
``LogRecord`` and no handler chain. On a small GET those two cost a sixth of the ingress's time (an
interleaved A/B with the sockets faked: 149 against 122 µs per request); written once per turn
of the event loop, they still cost a ``write`` every three or four GETs and a turn of the loop that
waits for nothing (``strace -c``, 3,000 GETs: 851 writes and 1,478 ``epoll_pwait``, against 27 and
792 buffered). The line is the same either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, TextIO

logger = logging.getLogger("preview_ingress")

_c_encoder = getattr(json.encoder, "c_make_encoder", None)


def _encoder() -> Callable[[Mapping[str, Any]], str]:
    """Compact JSON of a line, as ``json.dumps(line, separators=(",", ":"))`` writes it.

    The C encoder ``JSONEncoder.encode`` builds on every call, built once: a line in 1.5 µs, not
    2.2 (about 6,600 fewer instructions per small GET, cachegrind). ``JSONEncoder.encode`` where
    the C accelerator is missing."""
    if _c_encoder is None:
        return json.JSONEncoder(separators=(",", ":")).encode
    default = json.JSONEncoder().default  # TypeError for what JSON cannot hold, as json.dumps
    chunks = _c_encoder(
        None, default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )

    def encode(line: Mapping[str, Any]) -> str:
        return "".join(chunks(line, 0))

    return encode


encode = _encoder()
FLUSH_SECONDS = 0.1
"""How long an access line may wait to be written (nginx's ``access_log ... buffer= flush=``)."""
MAX_BUFFERED_LINES = 256
"""Access lines written at once when this many wait (about 80 KB), whatever their age."""


def write_request(
    event: str,
    method: str,
    path: str,
    request_id: str | None,
    duration_ms: float,
    fields: Mapping[str, Any],
    sink: Callable[[str], None] | None,
) -> None:
    """The line of a request or stream, ``{"event": event, "method": method, "path": path,
    "request_id": request_id, "duration_ms": duration_ms, **fields}`` as compact JSON
    (:func:`encode`'s text): to ``sink``, else to the logger."""
    if sink is None and not logger.isEnabledFor(logging.INFO):
        return
    fields_text = _fields_json(fields)
    if fields_text is None:  # a bool, a float, anything else: as the encoder writes it
        line = {"event": event, "method": method, "path": path, "request_id": request_id}
        text = encode({**line, "duration_ms": duration_ms, **fields})
    else:
        duration = float.__repr__(duration_ms) if math.isfinite(duration_ms) else json.dumps(duration_ms)
        text = (
            f'{{"event":{_quoted(event)},"method":{_quoted(method)},"path":{_quoted(path)},'
            f'"request_id":{"null" if request_id is None else _quoted(request_id)},'
            f'"duration_ms":{duration}{fields_text}}}'
        )
    if sink is not None:
        sink(text)
    else:
        logger.info(text)


_quoted = json.encoder.encode_basestring_ascii
_QUOTED_KEYS: dict[str, str] = {}


def _fields_json(fields: Mapping[str, Any]) -> str | None:
    """``fields`` as :func:`encode` writes them inside a line (each preceded by a comma), built
    straight for the values a request's fields hold (strings, integers, ``None``): 0.7 µs a line
    in a loop, not the encoder's 2.5, and about 8,400 fewer instructions per small GET
    (cachegrind). ``None`` for any other value: the caller leaves the line to the encoder."""
    parts = []
    for key, value in fields.items():
        kind = type(value)
        if kind is str:
            encoded = _quoted(value)
        elif kind is int:
            encoded = int.__repr__(value)
        elif value is None:
            encoded = "null"
        else:
            return None
        quoted_key = _QUOTED_KEYS.get(key)
        if quoted_key is None:
            quoted_key = _quoted(key) + ":"
            if len(_QUOTED_KEYS) < 256:
                _QUOTED_KEYS[key] = quoted_key
        parts.append("," + quoted_key + encoded)
    return "".join(parts)


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
