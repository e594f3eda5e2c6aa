"""Each job's log lines name the job: its actor and Dramatiq message id.

The scope is opened in the worker thread before the actor runs; an async actor's coroutine
is handed to the event loop from that thread and takes a copy of its context with it, so the
actor's own lines (and the ids it binds: payment, message, endpoint...) carry it too.
"""

from __future__ import annotations

import threading
from contextvars import Token
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from app.logs import context


class JobLogContext(Middleware):
    def __init__(self) -> None:
        self._local = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._local.token = context.open_scope(actor=message.actor_name,
                                               job_id=message.message_id)

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        token: Token[context.Ids] | None = getattr(self._local, "token", None)
        if token is not None:
            self._local.token = None
            context.close_scope(token)

    after_skip_message = after_process_message
