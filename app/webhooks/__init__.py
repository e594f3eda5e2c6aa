"""Webhook endpoints and their delivery: the operator's and each platform's endpoints, the
fan-out of events into messages, attempts, retries and replays.

How an event reaches a receiver:

1. an area calls ``app.events.service.emit`` in its own transaction: an ``events`` row (the
   outbox) and, once that transaction commits, a fan-out job (``tasks.WebhookOutbox``);
2. ``fan_out`` turns waiting events into one message per matching endpoint and leases some
   of them to the running job, which sends them (``flows``: the multi-transaction flows);
3. ``leases`` decides who sends a message, ``attempts`` records what a send did (retry on the
   schedule, fail, disable the endpoint: ``disabling``);
4. ``sweeper`` finds in the tables whatever the broker lost.

Routes: ``routes`` (a platform's endpoints), ``admin_routes`` (every endpoint); the rules of
endpoint management are ``service``, its SQL ``repository``, wire shapes ``schemas``.
"""
