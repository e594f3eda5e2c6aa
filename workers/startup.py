"""The one line each process prints as it starts: what it runs, against what. Never a secret.

Databases, brokers and RPC nodes are named by kind and host only: their URLs may carry a
password or a provider's API key. The signer is named by its address.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from eth_account import Account
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.settings import Settings
from workers.actors import all_actors
from workers.periodic import registered


def database(settings: Settings) -> str:
    if settings.is_sqlite:
        path = settings.sqlite_path()
        return f"sqlite {path}" if path is not None else "sqlite in memory"
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return "unparsable database URL"
    where = f"{url.host or 'local socket'}{f':{url.port}' if url.port else ''}"
    return f"{url.get_backend_name()} at {where}"


def broker(settings: Settings) -> str:
    if settings.embedded:
        return "embedded (in-process, no Redis)"
    parts = urlsplit(settings.redis_url)
    where = "a unix socket" if parts.scheme == "unix" else (
        f"{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}")
    return f"redis at {where} (prefix {settings.redis_prefix})"


def networks(settings: Settings) -> str:
    enabled = settings.networks()
    if not enabled:
        return "networks none (payments off)"
    described = []
    for name, network in enabled.items():
        hosts = ", ".join(urlsplit(url).hostname or "?" for url in network.rpc_urls)
        described.append(f"{name} (chain {network.chain_id}, rpc {hosts})")
    signer = settings.chain_signer_private_key
    if signer is None:
        who = "signer NOT CONFIGURED (signed payments cannot settle)"
    else:
        try:
            who = f"signer {Account.from_key(signer.get_secret_value()).address}"
        except (ValueError, TypeError):
            raise ValueError("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY is not a private key "
                             "(32 bytes in hex)") from None
    return f"networks {', '.join(described)}; {who}"


def queues() -> str:
    return ", ".join(sorted({actor.queue_name for actor in all_actors()}))


def jobs() -> str:
    return ", ".join(
        f"{job.actor.actor_name}/{job.every_seconds:g}s"
        for job in sorted(registered(), key=lambda job: job.actor.actor_name)
    )


def serve_line(
    settings: Settings, *, host: str, port: int, processes: int, background: bool, threads: int,
    role: str = "serve",
) -> str:
    api = f"API on {host}:{port} ({processes} process{'es' if processes > 1 else ''})"
    if background:
        ran = (f"background in this process ({threads} threads): queues {queues()}; "
               f"jobs {jobs()}")
    elif settings.embedded:
        ran = ("NO background (--no-background without Redis: run `passgate worker` on this "
               "database, or nothing settles payments or delivers webhooks)")
    else:
        ran = "no background (`passgate worker` and one `passgate scheduler` run it)"
    return (f"passgate {role}: {api}; {ran}; broker {broker(settings)}; "
            f"database {database(settings)}; {networks(settings)}")


def worker_line(settings: Settings, *, threads: int, schedule: bool) -> str:
    sent = f"jobs {jobs()} (sent by this worker)" if schedule else (
        "periodic jobs sent by `passgate scheduler`")
    return (f"passgate worker: queues {queues()} ({threads} threads); {sent}; "
            f"broker {broker(settings)}; database {database(settings)}; {networks(settings)}")


def scheduler_line(settings: Settings) -> str:
    return f"passgate scheduler: sends jobs {jobs()}; broker {broker(settings)}"
