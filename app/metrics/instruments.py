"""Counters and histograms of things that happen, incremented where they happen.

They live in prometheus_client's process-wide registry, so whatever runs in a process (the
API, an in-process worker, a ``passgate worker``) shows in that process's exposition. With
``PROMETHEUS_MULTIPROC_DIR`` set before this module is first imported (``passgate serve
--workers N`` does it), every value is kept in a file there and ``/metrics`` adds up all the
API processes.

Labels only take bounded values: route templates, provider names (configured by the
operator), outcomes from fixed lists. Never a raw path, a key, an id or an address.

What is a state rather than an event (payments by status, watcher head and lag, queue depth)
is read from the database and the broker when scraped: see ``app.health.metrics_state``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# ``_created`` timestamps double the series and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream

# Seconds. API answers range from a millisecond (a cached key) to a paid request's settlement
# wait (PASSGATE_SETTLE_WAIT, 20 s by default).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                30.0)
# From a payment's record to its settlement: a block or two, up to an authorization's window.
SETTLEMENT_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0)
# One webhook attempt is bounded by its timeout (15 s by default).
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
# A message's first attempt comes within milliseconds; retries stretch over hours (10 h apart
# at the end of the schedule).
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
                    7200.0, 36000.0, 86400.0)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0)

HTTP_REQUESTS = Counter(
    "passgate_http_requests", "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "passgate_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and status.",
    ["method", "route", "status"], buckets=HTTP_BUCKETS,
)
SETTLEMENT_SECONDS = Histogram(
    "passgate_payment_settlement_seconds",
    "Time from a payment's record to its settlement.",
    ["scheme", "network"], buckets=SETTLEMENT_BUCKETS,
)
WEBHOOK_ATTEMPTS = Counter(
    "passgate_webhook_attempts",
    "Webhook delivery attempts by outcome: success, or the kind of failure "
    "(http, timeout, connect, dns, tls, ssrf, redirect, protocol).",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "passgate_webhook_attempt_duration_seconds", "Duration of one webhook attempt, by outcome.",
    ["outcome"], buckets=ATTEMPT_BUCKETS,
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "passgate_webhook_delivery_seconds",
    "Time from a webhook message's creation to its successful delivery (retries included).",
    buckets=DELIVERY_BUCKETS,
)
GATEWAY_CALLS = Counter(
    "passgate_gateway_calls",
    "Gateway calls by provider and outcome: success (2xx, charged), client_error (1xx/3xx/4xx "
    "relayed, not charged), upstream_error (5xx or a broken answer), timeout, connect_error, "
    "cancelled.",
    ["provider", "outcome"],
)
GATEWAY_UPSTREAM_SECONDS = Histogram(
    "passgate_gateway_upstream_seconds", "Time until an upstream's response headers arrived.",
    ["provider"], buckets=UPSTREAM_BUCKETS,
)
GATEWAY_CHARGED = Counter(
    "passgate_gateway_charged_micros",
    "What gateway calls were charged, in USDC micros, by provider and how they were paid "
    "(credits or x402).",
    ["provider", "payment"],
)
GATEWAY_LEASES = Counter(
    "passgate_gateway_lease_events",
    "Gateway credit leases (app.gateway.leases): taken and closed by this process, swept (closed "
    "by the sweeper: their process died), batches_written and calls_written (finished calls "
    "recorded, in batches), record_failed (a batch not written, retried), calls_dropped, "
    "calls_lost_at_exit and calls_free (calls served but never charged).",
    ["event"],
)
GATEWAY_LEASE_MICROS = Counter(
    "passgate_gateway_lease_micros",
    "USDC micros taken into credit leases (taken) and given back unused (closed, swept).",
    ["event"],
)
# Summed over the live API processes: what a crash of them all could leave uncharged now.
GATEWAY_LEASE_UNRECORDED = Gauge(
    "passgate_gateway_lease_unrecorded_calls",
    "Gateway calls paid from credit leases that finished but are not written yet (the writer "
    "records them within about 250 ms); a process that dies loses its share uncharged.",
    multiprocess_mode="livesum",
)
RATE_LIMIT_REFUSALS = Counter(
    "passgate_rate_limit_refusals",
    "Requests refused with 429: by a key's limit, or the per-IP sign-up or wallet sign-in "
    "limit.",
    ["limit"],
)


def gateway_call(provider: str, outcome: str, latency_ms: int | None) -> None:
    GATEWAY_CALLS.labels(provider, outcome).inc()
    if latency_ms is not None:
        GATEWAY_UPSTREAM_SECONDS.labels(provider).observe(latency_ms / 1000)


def gateway_charged(provider: str, payment: str, micros: int) -> None:
    if micros > 0:
        GATEWAY_CHARGED.labels(provider, payment).inc(micros)


def gateway_lease(event: str, *, count: int = 1, micros: int = 0) -> None:
    GATEWAY_LEASES.labels(event).inc(count)
    if micros > 0:
        GATEWAY_LEASE_MICROS.labels(event).inc(micros)


def gateway_lease_unrecorded(change: int) -> None:
    GATEWAY_LEASE_UNRECORDED.inc(change)


def webhook_attempt(outcome: str, latency_ms: int) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_ATTEMPT_SECONDS.labels(outcome).observe(latency_ms / 1000)


def rate_limited(limit: str) -> None:
    RATE_LIMIT_REFUSALS.labels(limit).inc()
