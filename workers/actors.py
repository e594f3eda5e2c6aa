"""Every actor module, imported by the worker. Areas add their modules here."""

import workers.chain
import workers.gateway
import workers.webhooks  # noqa: F401  (fan-out, delivery, sweeper)
