"""``passgate demo`` is the README's first command: it must run end to end and exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_every_step_and_exits_zero():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSGATE_")}

    result = subprocess.run([sys.executable, "-m", "workers.cli", "demo"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo finished" in result.stdout
    assert "RATE_LIMITED" in result.stdout
    assert "API key has been revoked" in result.stdout
