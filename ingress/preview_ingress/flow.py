"""The write side of the ingress's two protocols (viewer.py, upstream.py): asyncio's flow control
(``pause_writing`` / ``resume_writing``) as one future that :meth:`WriteFlow.drain` waits on."""

from __future__ import annotations

import asyncio


class WriteFlow(asyncio.Protocol):
    _drain: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        """Return once the transport takes writes again (at once unless it paused us)."""
        if self._drain is not None and not self._drain.done():
            await self._drain

    def writing_lost(self, why: str) -> None:
        """The connection is gone: a writer waiting in :meth:`drain` gets ``ConnectionResetError``."""
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError(why))
