"""A worker process leaves its start-up heap out of later full garbage collections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import gc, sys
from app.settings import Settings
from workers.runner import run_worker

seen = []
settings = Settings(database_url=f"sqlite+aiosqlite:///{sys.argv[1]}", redis_url="")
run_worker(settings, threads=1, until=lambda: seen.append(gc.get_freeze_count()))
print(seen[0])
"""


def test_a_started_worker_has_frozen_its_start_up_heap(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "worker.db")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    # Modules, ORM mappers, the broker and the actors: far more than a handful of objects.
    assert int(done.stdout.strip().splitlines()[-1]) > 10_000
