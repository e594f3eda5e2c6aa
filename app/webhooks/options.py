"""Webhook policy objects built from the settings: schedule, SSRF guard, transport, sealing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TypeAlias

from litestar.params import SkipValidation

from app.crypto import SecretBox
from app.settings import Settings
from webhooks.retry_policy import RetrySchedule
from webhooks.ssrf import SSRFPolicy
from webhooks.transport import TransportConfig


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    schedule: RetrySchedule
    policy: SSRFPolicy
    transport: TransportConfig
    box: SecretBox
    disable_after: timedelta
    secret_overlap: timedelta
    # Seconds between two replayed messages of one endpoint.
    replay_spacing: float
    replay_max: int
    claim_for: timedelta
    sweep_grace: timedelta
    sweep_batch: int
    max_endpoints: int
    send_concurrency: int

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookOptions:
        return cls(
            schedule=RetrySchedule.from_delays(
                settings.webhook_retry_delays,
                jitter=settings.webhook_retry_jitter,
                max_retry_after=settings.webhook_max_retry_after_seconds,
            ),
            policy=SSRFPolicy.from_cidrs(settings.webhook_allowed_cidrs),
            transport=TransportConfig(
                total_timeout=settings.webhook_timeout_seconds,
                connect_timeout=min(
                    settings.webhook_connect_timeout_seconds, settings.webhook_timeout_seconds
                ),
            ),
            box=SecretBox(settings.key_pepper.get_secret_value()),
            disable_after=timedelta(seconds=settings.webhook_disable_after_seconds),
            secret_overlap=timedelta(seconds=settings.webhook_secret_overlap_seconds),
            replay_spacing=1.0 / settings.webhook_replay_per_second,
            replay_max=settings.webhook_replay_max_messages,
            # Never shorter than an attempt can take, or a slow receiver would see two senders.
            claim_for=timedelta(
                seconds=max(settings.webhook_claim_seconds, settings.webhook_timeout_seconds + 1)
            ),
            sweep_grace=timedelta(seconds=settings.webhook_sweep_grace_seconds),
            sweep_batch=settings.webhook_sweep_batch,
            max_endpoints=settings.webhook_max_endpoints,
            send_concurrency=settings.webhook_send_concurrency,
        )


# What a handler declares to receive the options (``webhook_options: Options``): Litestar would
# otherwise rebuild the dataclass per request through msgspec, which cannot type the SSRF
# policy's network unions.
Options: TypeAlias = SkipValidation[WebhookOptions]
