"""Online reads on an asyncio event loop: the same packed pipeline as the standalone transport, without blocking.

One connection per event loop carries every concurrent read: each read writes its whole pipeline at once and
waits for its own replies, which Redis returns in order, parsed by hiredis as they arrive. A server answering
many connections on one loop (uvicorn) thus shares one socket, and no thread waits on a blocking `recv`.
"""

import asyncio
import socket
from collections import deque
from collections.abc import Mapping

import hiredis
import redis

from resources.redis_transport import ReadPlanOfView, Reply, group_by_view, pack_read


class _ReplyPipe(asyncio.Protocol):
    """One Redis connection: requests written in order, each waiting for its count of replies."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = hiredis.Reader()
        self.waiting: deque[tuple[int, list[object], asyncio.Future[list[object]]]] = deque()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        while self.waiting:
            count, replies, future = self.waiting[0]
            while len(replies) < count:
                reply = self.parser.gets()
                if reply is False:
                    return
                replies.append(reply)
            self.waiting.popleft()
            if not future.done():
                future.set_result(replies)

    def connection_lost(self, error: BaseException | None) -> None:
        self.lost = error or ConnectionError("Redis closed the connection")
        while self.waiting:
            future = self.waiting.popleft()[2]
            if not future.done():
                future.set_exception(redis.ConnectionError(str(self.lost)))

    def send(self, payload: bytes, count: int) -> "asyncio.Future[list[object]]":
        """Write one pipeline of `count` commands and return the future of its replies."""
        future: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            future.set_exception(redis.ConnectionError(f"the connection to Redis is closed ({self.lost})"))
            return future
        self.waiting.append((count, [], future))
        self.transport.write(payload)
        return future


class AsyncStandaloneTransport:
    """Reads from one standalone Redis on the running event loop, with the connection settings of a redis-py pool."""

    def __init__(self, settings: Mapping[str, object], timeout: float) -> None:
        self.settings = dict(settings)
        self.timeout = timeout
        self._pipe: _ReplyPipe | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connected(self) -> _ReplyPipe:
        """Return this loop's connection, opening it (with AUTH and SELECT as configured) when missing or lost."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._pipe, self._connecting = loop, None, asyncio.Lock()
        pipe = self._pipe
        if pipe is not None and pipe.lost is None:
            return pipe
        assert self._connecting is not None
        async with self._connecting:
            if self._pipe is not None and self._pipe.lost is None:
                return self._pipe
            if self.settings.get("path"):
                connect = loop.create_unix_connection(_ReplyPipe, str(self.settings["path"]))
            else:
                connect = loop.create_connection(_ReplyPipe, str(self.settings["host"]), int(self.settings["port"]))
            _, pipe = await asyncio.wait_for(connect, self.timeout)
            setup = []
            if self.settings.get("password"):
                credentials = [self.settings.get("username"), self.settings["password"]]
                setup.append(["AUTH", *(str(c) for c in credentials if c)])
            if int(self.settings.get("db") or 0):
                setup.append(["SELECT", str(self.settings["db"])])
            if setup:
                payload = b"".join(_command(*words) for words in setup)
                for reply in await asyncio.wait_for(pipe.send(payload, len(setup)), self.timeout):
                    if isinstance(reply, hiredis.ReplyError):
                        pipe.transport.close()
                        raise redis.AuthenticationError(str(reply))
            self._pipe = pipe
            return pipe

    async def read(self, requests: list[tuple[ReadPlanOfView, list[bytes]]], now_us: int) -> list[list[Reply]]:
        """Send every HGET (or read script call) of every view in one pipeline; replies grouped by view."""
        payload, count = pack_read(requests, now_us)
        if not count:
            return [[] for _ in requests]
        pipe = await self._connected()
        try:
            async with asyncio.timeout(self.timeout):  # cheaper than wait_for: no task wraps the future
                replies = await pipe.send(payload, count)
        except TimeoutError:
            pipe.transport.close()
            raise redis.TimeoutError(f"Redis did not answer within {self.timeout} s") from None
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                raise (redis.exceptions.NoScriptError if text.startswith("NOSCRIPT") else redis.ResponseError)(text)
        return group_by_view(replies, requests)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close this transport's connection (the next read opens a new one); a closed loop closed it already."""
        loop_open = self._loop is not None and not self._loop.is_closed()
        if loop_open and self._pipe is not None and self._pipe.transport is not None:
            self._pipe.transport.close()
        self._pipe = None


def _command(*words: str) -> bytes:
    """Return one command as RESP bytes."""
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
