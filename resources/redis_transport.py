"""Round trips to Redis for the online store: one pipeline per read, pipelined newer-wins script calls per write.

The standalone transport packs commands by hand on a pooled connection (the hot path); the cluster transport goes
through redis-py's cluster pipeline, one batch per node.
"""

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import polars as pl
import redis
from redis.cluster import RedisCluster

from resources import online_encoding as encoding

# Rows per EVALSHA: more amortizes the call, fewer keeps each script's pause of concurrent readers near 1 ms
# (a row takes 3-4 µs of Redis time).
ROWS_PER_SCRIPT_CALL = 256

Reply = bytes | None


class ReadPlanOfView(Protocol):
    """What a transport needs to read one view: its hash field (RESP bulk and plain), or its read script's SHA1."""

    read_field: bytes
    field: bytes
    script_sha: bytes | None


@dataclass
class WriteProgress:
    """Rows the server has acknowledged so far, and how many of them replaced the stored value."""

    rows: int = 0
    replaced: int = 0


def group_by_view(replies: list[Reply], requests: list[tuple[ReadPlanOfView, list[bytes]]]) -> list[list[Reply]]:
    """Split a flat list of replies into one list per requested view."""
    grouped, start = [], 0
    for _, keys in requests:
        grouped.append(replies[start : start + len(keys)])
        start += len(keys)
    return grouped


def pack_read(requests: list[tuple[ReadPlanOfView, list[bytes]]], now_us: int) -> tuple[bytes, int]:
    """Return every HGET (or read script call, at `now_us`) of every view as one RESP payload, and their count."""
    commands = []
    for plan, keys in requests:
        if plan.script_sha is None:
            field = plan.read_field
            commands += [b"*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n%s" % (len(key), key, field) for key in keys]
        else:
            head = b"*5\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n" % plan.script_sha
            now = encoding.resp_bulk(b"%d" % now_us)
            commands += [head + b"$%d\r\n%s\r\n" % (len(key), key) + now for key in keys]
    return b"".join(commands), len(commands)


class StandaloneTransport:
    """Round trips to one Redis server on pooled connections, with commands packed by hand for speed."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.pool = client.connection_pool

    def read(self, requests: list[tuple[ReadPlanOfView, list[bytes]]], now_us: int) -> list[list[Reply]]:
        """Send every HGET (or read script call, at `now_us`) of every view in one pipeline; replies grouped by view."""
        payload, count = pack_read(requests, now_us)
        if not count:
            return [[] for _ in requests]
        connection = self.pool.get_connection()
        try:
            connection.send_packed_command([payload], check_health=False)
            replies = [connection.read_response() for _ in range(count)]
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self.pool.release(connection)
        return group_by_view(replies, requests)

    def write(self, slices: Iterator[pl.DataFrame], script: str, progress: WriteProgress) -> None:
        """Run the newer-wins script over encoded row slices, sending one slice while the previous one executes."""
        sha = self.client.script_load(script).encode()
        connection = self.pool.get_connection()
        pending: deque[list[int]] = deque()
        try:
            for part in slices:
                payload, row_counts = self._pack(part, sha)
                connection.send_packed_command([payload], check_health=False)
                pending.append(row_counts)
                if len(pending) > 1:
                    self._acknowledge(connection, pending.popleft(), progress)
            while pending:
                self._acknowledge(connection, pending.popleft(), progress)
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self.pool.release(connection)

    @staticmethod
    def _pack(part: pl.DataFrame, sha: bytes) -> tuple[bytes, list[int]]:
        """Return EVALSHA calls of up to ROWS_PER_SCRIPT_CALL rows each as RESP bytes, and their row counts."""
        framed = (
            part.select(
                keys=encoding.resp_bulk_expr("key"),
                arguments=encoding.resp_bulk_expr(*part.columns[1:]),
                call=pl.int_range(pl.len()) // ROWS_PER_SCRIPT_CALL,
            )
            .group_by("call", maintain_order=True)
            .agg(pl.col("keys").str.join(""), pl.col("arguments").str.join(""), rows=pl.len())
        )
        chunks, row_counts = [], []
        for keys, values, rows in framed.select("keys", "arguments", "rows").iter_rows():
            argc = 3 + rows * 3
            count = encoding.resp_bulk(b"%d" % rows)
            header = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n%s" % (argc, sha, count)
            chunks += [header, keys.encode(), values.encode()]
            row_counts.append(rows)
        return b"".join(chunks), row_counts

    @staticmethod
    def _acknowledge(connection: redis.Connection, row_counts: list[int], progress: WriteProgress) -> None:
        for rows in row_counts:
            progress.replaced += connection.read_response()
            progress.rows += rows

    def delete(self, keys: list[bytes]) -> int:
        """Delete the given keys and return how many existed."""
        pipeline = self.client.pipeline(transaction=False)
        for start in range(0, len(keys), 1000):
            pipeline.delete(*keys[start : start + 1000])
        return sum(pipeline.execute())


class ClusterTransport:
    """Round trips to a Redis Cluster through redis-py's cluster pipeline (one batch per node)."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client

    def read(self, requests: list[tuple[ReadPlanOfView, list[bytes]]], now_us: int) -> list[list[Reply]]:
        """Pipeline every HGET (or read script call, at `now_us`) of every view; replies grouped by view."""
        pipeline = self.client.pipeline()
        for plan, keys in requests:
            for key in keys:
                if plan.script_sha is None:
                    pipeline.hget(key, plan.field)
                else:
                    pipeline.execute_command("EVALSHA", plan.script_sha, 1, key, now_us)
        return group_by_view(pipeline.execute(), requests)

    def write(self, slices: Iterator[pl.DataFrame], script: str, progress: WriteProgress) -> None:
        """Run the newer-wins script once per row (each key has its own slot), one pipeline per slice."""
        sha = self.client.script_load(script)
        for part in slices:
            pipeline = self.client.pipeline()
            for key, *arguments in part.iter_rows():
                pipeline.execute_command("EVALSHA", sha, 1, key, *arguments)
            progress.replaced += sum(pipeline.execute())
            progress.rows += part.height

    def delete(self, keys: list[bytes]) -> int:
        """Delete the given keys and return how many existed."""
        pipeline = self.client.pipeline()
        for key in keys:
            pipeline.delete(key)
        return sum(pipeline.execute())
