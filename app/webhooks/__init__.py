"""Webhook endpoints and their delivery: the operator's and each platform's endpoints, the
fan-out of events into messages, attempts, retries and replays."""
