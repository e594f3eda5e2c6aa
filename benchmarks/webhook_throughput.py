"""Webhook delivery throughput: the full pipeline vs a raw httpx POST loop (goal: ratio >= 0.4).

One run, same receiver, same body size, two measurements of throughput and one of latency:

- **raw**: an ``httpx.AsyncClient`` posting N bodies, at 1, 4, 8, 16 and 32 requests in flight;
  the best of those rates is the baseline (httpx's pool slows down with many connections);
- **passgate** (throughput): N events committed to the outbox with the app's own
  ``app.events.service.emit``, ``EMIT_BATCH`` events per transaction (as a busy app commits
  them; the emitter's cost is not what this measures), then, as in production: outbox ->
  fan-out job -> one message row per event and endpoint -> Dramatiq through the real Redis
  broker -> ``passgate worker`` processes -> signed, SSRF-guarded HTTP POST -> every attempt
  recorded. Deliveries/s = N / (last receipt - first commit), so the emitting overlaps the
  delivering and is inside the window;
- **latency**: a separate, paced phase: one event per transaction (like one API request each)
  at ``--latency-rate`` events/s; p50/p95/p99 from each event's commit to its receipt (wall
  clock, same host). The burst phase's own commit-to-receipt figures are printed too: they are
  mostly time spent queued behind the other N events.

The receiver (a separate process) verifies every passgate delivery's Standard Webhooks
signature with the endpoint's secret and counts failures and duplicates; the run fails if any
delivery is missing or badly signed. PostgreSQL when one answers on 127.0.0.1:5432 (a scratch
database, dropped afterwards), SQLite otherwise; Redis database 13 under a scratch namespace
(deleted).

    uv run python benchmarks/webhook_throughput.py [--events 2000] [--workers 2] [--threads 8]
        [--send-concurrency 8] [--latency-events 400] [--latency-rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._support import free_port, write_result

REDIS_URL = "redis://127.0.0.1:6379/13"
PG = ("127.0.0.1", 5432, "postgres", "test")
CONCURRENCY = 32
# Events per transaction in the throughput phase, and transactions in flight.
EMIT_BATCH = 50
EMIT_CONCURRENCY = 4
WAIT_SECONDS = float(os.environ.get('BENCH_WAIT', 300))


# -- the receiver (a separate process, so it competes with neither side) ----------------------


def receiver_app(secret: str | None) -> Any:
    """A minimal ASGI receiver: 200 to every POST, remembers when each body's ``agentId``
    arrived; ``GET /stats?path=...`` returns those times. POSTs to ``/hook`` (passgate's) are
    verified with ``secret`` like a real receiver would (``webhooks.verify``)."""
    from webhooks.verify import WebhookVerificationError, verify

    arrivals: dict[str, dict[str, float]] = {}
    duplicates: dict[str, int] = {}
    bad_signatures: dict[str, int] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        if scope["method"] == "GET":
            wanted = parse_qs(scope["query_string"].decode()).get("path", [""])[0]
            payload = json.dumps({"arrivals": arrivals.get(wanted, {}),
                                  "duplicates": duplicates.get(wanted, 0),
                                  "bad_signatures": bad_signatures.get(wanted, 0)}).encode()
        else:
            now = time.time()
            if path == "/hook" and secret is not None:
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                try:
                    verify(body, headers, secret)
                except WebhookVerificationError:
                    bad_signatures[path] = bad_signatures.get(path, 0) + 1
            tag = json.loads(body)["data"]["agentId"]
            seen = arrivals.setdefault(path, {})
            if tag in seen:
                duplicates[path] = duplicates.get(path, 0) + 1
            else:
                seen[tag] = now
            payload = b"ok"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": payload})

    return app


def start_receiver(port: int, secret: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-receiver", str(port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "BENCH_RECEIVER_SECRET": secret},
    )
    wait_port(port)
    return proc


def serve_receiver(port: int) -> None:
    import uvicorn

    uvicorn.run(receiver_app(os.environ.get("BENCH_RECEIVER_SECRET")), host="127.0.0.1",
                port=port, log_level="warning", access_log=False, loop="uvloop",
                http="httptools")


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def arrivals(port: int, path: str) -> tuple[dict[str, float], int]:
    body = stats(port, path)
    return body["arrivals"], body["duplicates"]


def stats(port: int, path: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/stats", params={"path": path},
                                     timeout=30).json()
    return body


# -- scratch database and broker --------------------------------------------------------------


def pg_reachable() -> bool:
    try:
        with socket.create_connection(PG[:2], timeout=1):
            return True
    except OSError:
        return False


def create_database() -> tuple[str, Callable[[], None]]:
    if not pg_reachable():
        path = Path(tempfile.mkdtemp(prefix="passgate-bench-")) / "bench.db"
        return f"sqlite+aiosqlite:///{path}", lambda: None
    import psycopg

    name = f"passgate_bench_{uuid.uuid4().hex[:10]}"
    host, port, user, admin_db = PG

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(host=host, port=port, user=user, dbname=admin_db,
                               autocommit=True, connect_timeout=5)

    with connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+asyncpg://{user}@{host}:{port}/{name}", drop


def delete_namespace(namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


# -- the two measurements ---------------------------------------------------------------------


def envelope(tag: str) -> bytes:
    """The body the pipeline sends for one event, built the same way."""
    from webhooks.events import build_envelope

    return build_envelope("credits.low", event_data(tag))


def event_data(tag: str) -> dict[str, Any]:
    return {"agentId": tag, "balanceMicros": 250_000, "thresholdMicros": 1_000_000,
            "observedAt": "2026-03-27T08:00:00Z"}


def credits_low(tag: str) -> Any:
    """The same event as :func:`event_data`, as the typed shape ``emit`` takes."""
    import msgspec

    from webhooks.events import CreditsLow

    return msgspec.convert(event_data(tag), CreditsLow)


async def bounded(count: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def runner() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    await asyncio.gather(*(runner() for _ in range(concurrency)))


RAW_CONCURRENCY = (1, 4, 8, 16, 32)


async def raw_loop(url: str, count: int, prefix: str, concurrency: int = CONCURRENCY) -> float:
    """Seconds to POST ``count`` bodies with httpx, ``concurrency`` in flight."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=15) as client:
        bodies = [envelope(f"{prefix}{i}") for i in range(count)]

        async def post(i: int) -> None:
            response = await client.post(url, content=bodies[i],
                                         headers={"Content-Type": "application/json"})
            response.raise_for_status()

        started = time.perf_counter()
        await bounded(count, concurrency, post)
        return time.perf_counter() - started


async def sender_loop(url: str, count: int, prefix: str, concurrency: int) -> float:
    """Seconds to POST ``count`` signed bodies with passgate's own ``WebhookSender`` and no
    database or broker: what the pipeline would reach if the machinery around the HTTP call
    cost nothing. Informational; the goal's baseline stays the httpx loop."""
    from webhooks.signing import build_headers, generate_secret
    from webhooks.ssrf import SSRFPolicy
    from webhooks.transport import WebhookSender

    secrets = [generate_secret()]
    async with WebhookSender(SSRFPolicy.from_cidrs(["127.0.0.0/8"])) as sender:
        bodies = [envelope(f"{prefix}{i}") for i in range(count)]

        async def post(i: int) -> None:
            result = await sender.send(url, bodies[i], build_headers(f"msg_{i}", bodies[i],
                                                                      secrets))
            assert result.success, result.error

        started = time.perf_counter()
        await bounded(count, concurrency, post)
        return time.perf_counter() - started


async def emit_events(
    settings: Any, tags: list[str], *, batch: int, concurrency: int, rate: float | None = None,
) -> dict[str, float]:
    """Commit one outbox event per tag with the app's ``emit``, ``batch`` per transaction and
    ``concurrency`` transactions at a time, or (``rate``) one per transaction, paced; each
    commit enqueues the fan-out as a request's does. Returns each event's commit time."""
    from app.db.engine import create_engine, session_factory
    from app.events.service import emit
    from app.jobs import JobQueue, LazyBroker
    from app.webhooks.tasks import WebhookOutbox

    engine = create_engine(settings)
    broker = LazyBroker(settings)
    jobs = JobQueue(broker)
    sessions = session_factory(engine, jobs=jobs, events=WebhookOutbox(jobs))
    committed: dict[str, float] = {}
    chunks = [tags[i:i + batch] for i in range(0, len(tags), batch)]

    async def one(i: int) -> None:
        async with sessions() as session:
            for tag in chunks[i]:
                await emit(session, credits_low(tag))
            # The commit enqueues the fan-out, as a request's does.
            await session.commit()
            now = time.time()
            committed.update(dict.fromkeys(chunks[i], now))

    try:
        async with sessions() as session:  # connect before the clock starts
            await session.connection()
        if rate is None:
            await bounded(len(chunks), concurrency, one)
        else:
            started = time.monotonic()
            for i in range(len(chunks)):
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                await one(i)
    finally:
        await engine.dispose()
        broker.close()
    return committed


async def create_operator_endpoint(settings: Any, url: str) -> str:
    from app.audit.service import Actor
    from app.db.engine import create_engine, session_factory
    from app.webhooks import service
    from app.webhooks.options import WebhookOptions
    from app.webhooks.schemas import CreateEndpointBody

    engine = create_engine(settings)
    async with session_factory(engine)() as session:
        created = await service.create_endpoint(
            session, WebhookOptions.from_settings(settings), Actor("system", None),
            service.OPERATOR, CreateEndpointBody(url=url, description="benchmark"),
        )
        await session.commit()
    await engine.dispose()
    return created.secret


async def wait_for_arrivals(port: int, path: str, tags: set[str]) -> dict[str, float]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        seen, _ = await asyncio.to_thread(arrivals, port, path)
        if tags <= seen.keys():
            return seen
        if time.monotonic() > deadline:
            missing = sorted(tags - seen.keys())[:5]
            raise SystemExit(f"only {len(tags & seen.keys())}/{len(tags)} deliveries arrived;"
                             f" missing e.g. {missing}")
        await asyncio.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_figures(committed: dict[str, float], seen: dict[str, float]) -> dict[str, float]:
    latencies = [(seen[tag] - at) * 1000 for tag, at in committed.items()]
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
    }


async def pipeline(settings: Any, port: int, count: int, prefix: str) -> dict[str, float]:
    """The throughput phase: ``count`` events at once, batched commits."""
    tags = [f"{prefix}{i}" for i in range(count)]
    committed = await emit_events(settings, tags, batch=EMIT_BATCH, concurrency=EMIT_CONCURRENCY)
    emitted = max(committed.values()) - min(committed.values())
    seen = await wait_for_arrivals(port, "/hook", set(committed))
    mine = {tag: seen[tag] for tag in committed}
    return {
        "seconds": max(mine.values()) - min(committed.values()),
        "emit_seconds": emitted,
        **latency_figures(committed, mine),
    }


async def paced(settings: Any, port: int, count: int, rate: float, prefix: str
                ) -> dict[str, float]:
    """The latency phase: one event per transaction, ``rate`` a second."""
    tags = [f"{prefix}{i}" for i in range(count)]
    committed = await emit_events(settings, tags, batch=1, concurrency=1, rate=rate)
    seen = await wait_for_arrivals(port, "/hook", set(committed))
    return latency_figures(committed, {tag: seen[tag] for tag in committed})


# -- CPU accounting (Linux /proc; zeros elsewhere) ---------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_named(prefix: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith(prefix):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cpu_snapshot(workers: list[int], receiver: int) -> dict[str, float]:
    """CPU seconds so far of each part (PostgreSQL and Redis: every process of the host)."""
    return {
        "workers": sum(cpu_seconds(pid) for pid in workers),
        "emitter": cpu_seconds(os.getpid()),
        "receiver": cpu_seconds(receiver),
        "postgres": sum(cpu_seconds(pid) for pid in pids_named("postgres")),
        "redis": sum(cpu_seconds(pid) for pid in pids_named("redis-server")),
    }


# -- orchestration ----------------------------------------------------------------------------


def worker_env(settings: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "KEY_PEPPER": settings.key_pepper.get_secret_value(),
        "WEBHOOK_ALLOWED_CIDRS": json.dumps(settings.webhook_allowed_cidrs),
        "WEBHOOK_SEND_CONCURRENCY": settings.webhook_send_concurrency,
        "LOG_LEVEL": "WARNING",
    }
    return {**os.environ, **{f"PASSGATE_{k}": str(v) for k, v in values.items()}}


def start_workers(settings: Any, processes: int, threads: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", "from workers.cli import main; main()", "worker",
             "--threads", str(threads)],
            cwd=ROOT, env=worker_env(settings),
        )
        for _ in range(processes)
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.db import migrate
    from app.settings import Settings

    database_url, drop_database = create_database()
    namespace = f"bench:{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=database_url, redis_url=REDIS_URL, redis_prefix=namespace,
                        key_pepper=uuid.uuid4().hex, webhook_allowed_cidrs=["127.0.0.0/8"],
                        webhook_send_concurrency=args.send_concurrency, log_level="WARNING")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        migrate.upgrade(settings)
        secret = await create_operator_endpoint(settings, f"http://127.0.0.1:{port}/hook")
        receiver = start_receiver(port, secret)
        procs.append(receiver)
        workers = start_workers(settings, args.workers, args.threads)
        procs += workers

        # Warm-up: connections, worker start-up, JIT-free but cache-warm code paths.
        await raw_loop(f"http://127.0.0.1:{port}/warm", args.warmup, "warm-raw-")
        await pipeline(settings, port, args.warmup, "warm-")

        raw_rates: dict[int, float] = {}
        for concurrency in RAW_CONCURRENCY:
            path = f"/raw{concurrency}"
            seconds = await raw_loop(f"http://127.0.0.1:{port}{path}", args.events, "raw-",
                                     concurrency)
            assert len(arrivals(port, path)[0]) == args.events
            raw_rates[concurrency] = args.events / seconds
        seconds = await sender_loop(f"http://127.0.0.1:{port}/sender", args.events, "snd-",
                                    args.send_concurrency)
        assert len(arrivals(port, "/sender")[0]) == args.events
        sender_rate = args.events / seconds
        before = cpu_snapshot([w.pid for w in workers], receiver.pid)
        ours = await pipeline(settings, port, args.events, "evt-")
        after = cpu_snapshot([w.pid for w in workers], receiver.pid)
        latency = await paced(settings, port, args.latency_events, args.latency_rate, "lat-")
        received = stats(port, "/hook")
        if received["bad_signatures"]:
            raise SystemExit(f"{received['bad_signatures']} deliveries failed verification")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    finally:
        stop(procs)
        drop_database()
        delete_namespace(namespace)

    raw_concurrency, raw_rate = max(raw_rates.items(), key=lambda item: item[1])
    our_rate = args.events / ours["seconds"]
    return {
        "events": args.events,
        "database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
        "worker_processes": args.workers,
        "worker_threads": args.threads,
        "send_concurrency_per_worker": args.send_concurrency,
        "emit_batch": EMIT_BATCH,
        "emit_concurrency": EMIT_CONCURRENCY,
        "cpus": os.cpu_count(),
        "raw_deliveries_per_s": round(raw_rate, 1),
        "raw_best_concurrency": raw_concurrency,
        "raw_by_concurrency": {c: round(r, 1) for c, r in raw_rates.items()},
        # Not the goal's baseline: passgate's sender alone, no database, broker or workers.
        "raw_passgate_sender_per_s": round(sender_rate, 1),
        "passgate_deliveries_per_s": round(our_rate, 1),
        "ratio": round(our_rate / raw_rate, 3),
        "goal": 0.4,
        "emit_seconds": round(ours["emit_seconds"], 2),
        # Paced phase: what one event waits from its commit to its receipt.
        "latency_events": args.latency_events,
        "latency_rate_per_s": args.latency_rate,
        "commit_to_receipt_p50_ms": round(latency["p50_ms"], 1),
        "commit_to_receipt_p95_ms": round(latency["p95_ms"], 1),
        "commit_to_receipt_p99_ms": round(latency["p99_ms"], 1),
        # Throughput phase: mostly queueing behind the burst.
        "burst_commit_to_receipt_p50_ms": round(ours["p50_ms"], 1),
        "burst_commit_to_receipt_p95_ms": round(ours["p95_ms"], 1),
        "verified_deliveries": len(received["arrivals"]) + received["duplicates"],
        "bad_signatures": received["bad_signatures"],
        "duplicate_deliveries": received["duplicates"],
        # Where the pipeline's CPU went, per delivery (the raw loop needs no database or broker).
        "cpu_ms_per_delivery": {
            part: round((after[part] - before[part]) / args.events * 1000, 2) for part in after
        },
        "host_load_1min": round(load, 2) if load is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker")
    # One local receiver: httpx's pool is fastest with few connections (see raw_by_concurrency).
    parser.add_argument("--send-concurrency", type=int, default=8,
                        help="PASSGATE_WEBHOOK_SEND_CONCURRENCY of the workers")
    parser.add_argument("--latency-events", type=int, default=400)
    parser.add_argument("--latency-rate", type=float, default=100.0,
                        help="events/s in the paced latency phase")
    parser.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return
    figures = asyncio.run(run(args))
    for name, value in figures.items():
        print(f"{name:>26}: {value}")
    print(f"written to {write_result('webhook_throughput', figures)}")


if __name__ == "__main__":
    main()
