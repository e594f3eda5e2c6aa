"""What passgate wrote to standard error during a test (pytest's ``capsys``).

passgate's handler writes from a listener thread to whatever ``sys.stderr`` is at that moment,
so ``capsys`` sees it once the queue is drained.
"""

from __future__ import annotations

import json
from typing import Any

from app.logs.handlers import flush_all


def captured(capsys: Any) -> str:
    flush_all()
    return str(capsys.readouterr().err)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as one JSON object (a line that is not one fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
