"""Benchmark: the HTTP feature server (uvicorn, 1 and 2 workers) under a cheap load generator, vs its floors.

A private Redis holds 10k entities of 2 views (5 features each). The server runs in its own process (`serve`, as
`feature-store serve` runs it); the load generator runs in another, on raw non-blocking sockets with keep-alive
connections and pre-built HTTP/1.1 requests (one epoll loop; a few µs of Python per request, since it shares the
2 cores with the server and Redis). Cases:

- closed loop (each connection sends its next request as soon as the answer arrives) for requests/s, with
  1 entity x 10 features from 2 views and with 100 entities;
- open loop at a fixed rate (default 1,000 requests/s, 1 entity): latency from each request's scheduled send time
  to its complete answer, so a stalled server is not hidden by the generator waiting for it;
- floors in the same run: the in-process `get_online_features` call (the read alone), a no-op ASGI app under
  uvicorn with the same settings (the stack alone), and the server reading through a thread pool instead of
  inline on the event loop (the choice `app.INLINE_READ_MAX_ENTITIES` makes).

Each case runs in child processes; one HTTP answer is checked equal to the in-process call. Prints a table, then one
JSON line. `--quick` runs short cases to check that everything works.
"""

import argparse
import json
import os
import queue
import random
import re
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource  # noqa: E402

ENTITIES = 10_000
FEATURES_PER_VIEW = 5
CONNECTIONS = 16
REPOSITORY = "bench.http_serving:repository"
_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)

rider = Entity("rider", ["rider_id"])
source = ParquetSource("bench_http_events", "bench/events/*.parquet", timestamp_field="event_timestamp")


def _schema(prefix: str) -> list[Field]:
    dtypes = [pl.Int64, pl.Float64, pl.String, pl.Boolean, pl.Int32]
    return [Field(f"{prefix}_{index}", dtypes[index % len(dtypes)]) for index in range(FEATURES_PER_VIEW)]


rider_activity = FeatureView("rider_activity", entities=[rider], source=source, ttl="30d", schema=_schema("act"))
rider_profile = FeatureView("rider_profile", entities=[rider], source=source, ttl="30d", schema=_schema("prof"))
repository = FeatureRepository([rider_activity, rider_profile])
FEATURES = [f"rider_activity:{f.name}" for f in rider_activity.schema] + [
    f"rider_profile:{f.name}" for f in rider_profile.schema
]


def populate(url: str) -> None:
    """Write one row per entity to both views."""
    from resources.online_store import RedisOnlineStore

    rng = random.Random(1)
    now = datetime.now(UTC)
    store = RedisOnlineStore(url=url, repository=REPOSITORY)
    for view in (rider_activity, rider_profile):
        columns: dict[str, object] = {
            "rider_id": list(range(ENTITIES)),
            "event_timestamp": [now - timedelta(minutes=rng.randrange(600)) for _ in range(ENTITIES)],
            "created_timestamp": [now] * ENTITIES,
        }
        for f in view.schema:
            if f.dtype == pl.String:
                columns[f.name] = [f"city_{rng.randrange(500)}" for _ in range(ENTITIES)]
            elif f.dtype == pl.Boolean:
                columns[f.name] = [rng.random() < 0.5 for _ in range(ENTITIES)]
            elif f.dtype.is_float():
                columns[f.name] = [rng.random() * 100 for _ in range(ENTITIES)]
            else:
                columns[f.name] = [rng.randrange(10_000) for _ in range(ENTITIES)]
        store.write_batch(view, pl.DataFrame(columns, schema=view.output_schema))
    store.close()


def request_bodies(entities: int, count: int, seed: int = 7) -> list[bytes]:
    """Return `count` JSON bodies of random entities (10 features from 2 views each)."""
    rng = random.Random(seed)
    return [
        json.dumps({"features": FEATURES, "entities": {"rider_id": rng.sample(range(ENTITIES), entities)}}).encode()
        for _ in range(count)
    ]


def http_requests(bodies: list[bytes], path: str = "/get-online-features") -> list[bytes]:
    """Return the bodies as complete HTTP/1.1 keep-alive requests."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return [f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]


def percentiles(samples: list[float]) -> dict[str, float]:
    """Return p50, p99 and the mean of latencies given in seconds, in milliseconds."""
    if not samples:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan")}
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": pick(0.50), "p99": pick(0.99), "mean": statistics.fmean(ordered) * 1000}


class Connection:
    """One keep-alive connection: its socket, what it has received and when its request was due."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = bytearray()
        self.due = 0.0

    def complete_answer(self) -> bytes | None:
        """Return the status code of the complete answer in the buffer (consuming it), or None while incomplete."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        length = int(_CONTENT_LENGTH.search(self.buffer, 0, end).group(1))
        if len(self.buffer) < end + 4 + length:
            return None
        status = bytes(self.buffer[9:12])
        del self.buffer[: end + 4 + length]
        return status


def closed_loop(port: int, requests: list[bytes], seconds: float, connections: int) -> dict[str, float]:
    """Keep `connections` requests in flight for `seconds` (after a short warm-up); return requests/s and latency."""
    pool = [Connection(port) for _ in range(connections)]
    by_fd = {connection.sock.fileno(): connection for connection in pool}
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    cpu_start = time.process_time()
    warm_until = time.perf_counter() + min(1.0, seconds / 4)
    stop_at = warm_until + seconds
    latencies: list[float] = []
    errors = counted = sent = 0
    for connection in pool:
        connection.due = time.perf_counter()
        connection.sock.send(requests[sent % len(requests)])
        sent += 1
    while True:
        now = time.perf_counter()
        if now >= stop_at:
            break
        for fd, _ in poller.poll(1.0):
            connection = by_fd[fd]
            connection.buffer += connection.sock.recv(1 << 20)
            status = connection.complete_answer()
            if status is None:
                continue
            done = time.perf_counter()
            if done >= warm_until:
                counted += 1
                latencies.append(done - connection.due)
                errors += status != b"200"
            connection.due = done
            connection.sock.send(requests[sent % len(requests)])
            sent += 1
    for connection in pool:
        connection.sock.close()
    figures = {"requests_per_s": counted / seconds, "errors": errors, "requests": sent - len(pool)}
    return {
        **figures,
        "generator_cpu_us": (time.process_time() - cpu_start) * 1e6 / max(sent, 1),
        **percentiles(latencies),
    }


def open_loop(port: int, requests: list[bytes], seconds: float, rate: float, connections: int) -> dict[str, float]:
    """Send `rate` requests/s on schedule for `seconds`; latency runs from each scheduled send to its answer."""
    sys.setswitchinterval(0.0002)
    pool = [Connection(port) for _ in range(connections)]
    by_fd = {connection.sock.fileno(): connection for connection in pool}
    idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
    for connection in pool:
        idle.put(connection)
    latencies: list[float] = []
    errors = [0]
    outstanding = [0]
    finished = threading.Event()

    def receive() -> None:
        poller = select.epoll()
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        while not (finished.is_set() and outstanding[0] == 0):
            for fd, _ in poller.poll(0.05):
                connection = by_fd[fd]
                connection.buffer += connection.sock.recv(1 << 20)
                status = connection.complete_answer()
                if status is not None:
                    latencies.append(time.perf_counter() - connection.due)
                    errors[0] += status != b"200"
                    outstanding[0] -= 1
                    idle.put(connection)

    receiver = threading.Thread(target=receive)
    receiver.start()
    interval, total = 1.0 / rate, int(seconds * rate)
    cpu_start = time.process_time()
    start = time.perf_counter() + 0.05
    for index in range(total):
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        connection = idle.get()
        connection.due = due
        outstanding[0] += 1
        connection.sock.send(requests[index % len(requests)])
    finished.set()
    receiver.join()
    warm = latencies[int(len(latencies) * 0.1) :]
    figures = {"requests_per_s": rate, "errors": errors[0], "requests": len(latencies)}
    return {**figures, "generator_cpu_us": (time.process_time() - cpu_start) * 1e6 / max(total, 1), **percentiles(warm)}


def floor(url: str, entities: int, calls: int) -> dict[str, float]:
    """Time the in-process `get_online_features` call: the read alone, no HTTP."""
    from resources.online_store import RedisOnlineStore

    store = RedisOnlineStore(url=url, repository=REPOSITORY)
    rng = random.Random(3)
    batches = [{"rider_id": rng.sample(range(ENTITIES), entities)} for _ in range(calls)]
    for batch in batches[:100]:
        store.get_online_features(FEATURES, batch, include_timestamps=True)
    samples = []
    for batch in batches:
        started = time.perf_counter()
        store.get_online_features(FEATURES, batch, include_timestamps=True)
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


async def noop_app(scope, receive, send) -> None:
    """An ASGI app that reads the body and answers a constant JSON object: the floor of the stack."""
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    body = b'{"metadata":{"feature_names":[]},"results":[]}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def run_server(kind: str, port: int, workers: int) -> None:
    """Serve until terminated: the feature server (inline or thread-pool reads) or the no-op app."""
    if kind == "noop":
        import uvicorn

        uvicorn.run(noop_app, port=port, loop="uvloop", http="httptools", access_log=False, log_level="warning")
        return
    from feature_assets.serving import app
    from feature_assets.serving.server import serve

    if kind == "threadpool":
        app.INLINE_READ_MAX_ENTITIES = 0
    serve(port=port, workers=workers, repository=REPOSITORY)


def start_server(kind: str, url: str, workers: int) -> tuple[subprocess.Popen, int]:
    """Start a server child process and wait until it answers."""
    from resources.embedded_redis import free_port

    port = free_port()
    env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, __file__, "--child", "server", kind, str(port), str(workers)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.5 * workers)
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {kind} server did not start on port {port}")


def cpu_seconds(pid: int) -> float:
    """Return the CPU seconds (user + system) used so far by a process and its children (uvicorn workers)."""
    import psutil

    processes = [psutil.Process(pid)]
    processes += processes[0].children(recursive=True)
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def redis_cpu_seconds(url: str) -> float:
    """Return the CPU seconds the Redis server has used so far."""
    import redis

    info = redis.Redis.from_url(url).info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def child(*arguments: str) -> dict:
    """Run one measurement in a child process and return its JSON figures."""
    command = [sys.executable, __file__, "--child", *arguments]
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_equal(url: str, port: int) -> None:
    """Check that one HTTP answer equals the in-process call for the same entities."""
    import urllib.request

    from resources.online_store import RedisOnlineStore

    entities = {"rider_id": [1, 5, 9999, ENTITIES + 5]}
    body = json.dumps({"features": FEATURES, "entities": entities}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/get-online-features", body) as answer:
        served = json.loads(answer.read())
    store = RedisOnlineStore(url=url, repository=REPOSITORY)
    expected = store.get_online_features(FEATURES, entities).to_dict()
    store.close()
    names = served["metadata"]["feature_names"]
    got = {name: result["values"] for name, result in zip(names, served["results"], strict=True)}
    assert got == expected, (got, expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per closed-loop case")
    parser.add_argument("--open-seconds", type=float, default=20.0, help="seconds of the open-loop case")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s of the open-loop case")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="connections of closed-loop cases")
    parser.add_argument("--quick", action="store_true", help="short cases (2 s, 4 s open loop) to check it works")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "server":
            run_server(rest[0], int(rest[1]), int(rest[2]))
            return
        if kind == "floor":
            print(json.dumps(floor(rest[0], int(rest[1]), int(rest[2]))))
            return
        port, entities, seconds, rate, connections = (
            int(rest[0]),
            int(rest[1]),
            float(rest[2]),
            float(rest[3]),
            int(rest[4]),
        )
        path = "/noop" if kind == "noop" else "/get-online-features"
        requests = http_requests(request_bodies(entities, 1000), path)
        if rate:
            print(json.dumps(open_loop(port, requests, seconds, rate, connections)))
        else:
            print(json.dumps(closed_loop(port, requests, seconds, connections)))
        return
    seconds, open_seconds = (2.0, 4.0) if args.quick else (args.seconds, args.open_seconds)
    from resources.embedded_redis import RedisServer

    redis_server = RedisServer().start()
    try:
        populate(redis_server.url)
        results: dict[str, dict] = {
            "floor_1": child("floor", redis_server.url, "1", "3000" if not args.quick else "500"),
            "floor_100": child("floor", redis_server.url, "100", "500" if not args.quick else "100"),
        }

        def load(name: str, process: subprocess.Popen, port: int, entities: int, rate: float = 0.0) -> None:
            duration = open_seconds if rate else seconds
            figures = [str(port), str(entities), str(duration), str(rate), str(args.connections)]
            server_before, redis_before = cpu_seconds(process.pid), redis_cpu_seconds(redis_server.url)
            results[name] = child("noop" if name.startswith("noop") else "load", *figures)
            served = results[name]["requests"]
            results[name]["server_cpu_us"] = (cpu_seconds(process.pid) - server_before) * 1e6 / max(served, 1)
            results[name]["redis_cpu_us"] = (redis_cpu_seconds(redis_server.url) - redis_before) * 1e6 / max(served, 1)

        for kind, workers in (("noop", 1), ("inline", 1), ("threadpool", 1), ("inline", 2)):
            process, port = start_server(kind, redis_server.url, workers)
            try:
                tag = f"{kind}_{workers}w"
                if kind == "inline":
                    check_equal(redis_server.url, port)
                load(f"{tag}_1", process, port, 1)
                if kind != "noop":
                    load(f"{tag}_100", process, port, 100)
                if kind == "inline":
                    load(f"{tag}_open", process, port, 1, args.rate)
            finally:
                process.terminate()
                process.wait(timeout=30)
    finally:
        redis_server.stop()
    report(results, args)


def report(results: dict[str, dict], args: argparse.Namespace) -> None:
    """Print the table and the final JSON line."""
    print(f"HTTP feature server: {ENTITIES} entities x 2 views, 10 features, {args.connections} connections")
    print(f"{'case':<52}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'server us':>11}{'redis us':>10}{'loadgen us':>12}")
    labels = {
        "floor_1": "floor: in-process get_online_features, 1 entity",
        "floor_100": "floor: in-process get_online_features, 100 entities",
        "noop_1w_1": "floor: no-op ASGI app, uvicorn 1 worker, closed loop",
        "threadpool_1w_1": "reads in a thread pool, 1 worker, 1 entity",
        "threadpool_1w_100": "reads in a thread pool, 1 worker, 100 entities",
        "inline_1w_1": "server 1 worker, 1 entity, closed loop",
        "inline_1w_100": "server 1 worker, 100 entities, closed loop",
        "inline_1w_open": f"server 1 worker, 1 entity, open loop {args.rate:.0f}/s",
        "inline_2w_1": "server 2 workers, 1 entity, closed loop",
        "inline_2w_100": "server 2 workers, 100 entities, closed loop",
        "inline_2w_open": f"server 2 workers, 1 entity, open loop {args.rate:.0f}/s",
    }
    for name, label in labels.items():
        figures = results[name]
        rate = figures.get("requests_per_s", 1000 / figures["mean"])
        cpu = [figures.get(name) for name in ("server_cpu_us", "redis_cpu_us", "generator_cpu_us")]
        cells = "".join(
            f"{'' if value is None else f'{value:.0f}':>{width}}"
            for value, width in zip(cpu, (11, 10, 12), strict=True)
        )
        print(f"{label:<52}{rate:>9.0f}{figures['p50']:>9.3f}{figures['p99']:>9.3f}{cells}")
    best_1 = max(results["inline_1w_1"]["requests_per_s"], results["inline_2w_1"]["requests_per_s"])
    best_100 = max(results["inline_1w_100"]["requests_per_s"], results["inline_2w_100"]["requests_per_s"])
    print(
        json.dumps(
            {
                "requests_per_s_1_entity": round(best_1),
                "requests_per_s_100_entities": round(best_100),
                "p50_ms_at_1000_rps": round(results["inline_1w_open"]["p50"], 3),
                "p99_ms_at_1000_rps": round(results["inline_1w_open"]["p99"], 3),
                "floor_p50_ms": round(results["floor_1"]["p50"], 3),
                "floor_p99_ms": round(results["floor_1"]["p99"], 3),
                "floor_p99_ms_100_entities": round(results["floor_100"]["p99"], 3),
                "noop_requests_per_s": round(results["noop_1w_1"]["requests_per_s"]),
                "threadpool_requests_per_s_1_entity": round(results["threadpool_1w_1"]["requests_per_s"]),
                "workers_1_requests_per_s_1_entity": round(results["inline_1w_1"]["requests_per_s"]),
                "workers_2_requests_per_s_1_entity": round(results["inline_2w_1"]["requests_per_s"]),
                "workers_1_requests_per_s_100_entities": round(results["inline_1w_100"]["requests_per_s"]),
                "workers_2_requests_per_s_100_entities": round(results["inline_2w_100"]["requests_per_s"]),
                "workers_2_p50_ms_at_1000_rps": round(results["inline_2w_open"]["p50"], 3),
                "workers_2_p99_ms_at_1000_rps": round(results["inline_2w_open"]["p99"], 3),
                "server_cpu_us_per_request_1_entity": round(results["inline_1w_1"]["server_cpu_us"]),
                "noop_server_cpu_us_per_request": round(results["noop_1w_1"]["server_cpu_us"]),
                "threadpool_server_cpu_us_per_request": round(results["threadpool_1w_1"]["server_cpu_us"]),
                "threadpool_requests_per_s_100_entities": round(results["threadpool_1w_100"]["requests_per_s"]),
                "redis_cpu_us_per_request_1_entity": round(results["inline_1w_1"]["redis_cpu_us"]),
                "loadgen_cpu_us_per_request": round(results["inline_1w_1"]["generator_cpu_us"]),
                "errors": sum(figures.get("errors", 0) for figures in results.values()),
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
