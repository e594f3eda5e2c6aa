"""Every kind of passgate process keeps Python's recursion limit, so a decoder meeting deeply
nested input raises instead of overflowing the C stack and killing the process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.db import migrate
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# Each script starts one kind of process the way its entry point does, then runs ``probe``
# inside it: decode a hundred thousand levels of arrays.
_PROBE = """
import sys
import msgspec

def probe():
    try:
        msgspec.json.decode(b"[" * 100_000 + b"]" * 100_000)
    except RecursionError:
        print("limit", sys.getrecursionlimit(), "RecursionError")
"""

_STARTS = {
    "api": """
from app.main import create_app
from app.settings import get_settings
create_app(get_settings())
probe()
""",
    "worker": """
from app.settings import get_settings
from workers.runner import run_worker
run_worker(get_settings(), threads=1, until=probe)
""",
    "scheduler": """
from app.settings import get_settings
from workers.scheduler import run_scheduler
run_scheduler(get_settings(), until=probe)
""",
    # A command may import the eth stack (and so py_ecc) after start-up; it must not raise
    # the limit again.
    "cli": """
from workers.cli import main
main(["migrate"], standalone_mode=False)
import web3
probe()
""",
}


@pytest.mark.parametrize("process", sorted(_STARTS))
def test_a_started_process_survives_deeply_nested_json_with_a_recursion_error(
    process: str, tmp_path: Path
) -> None:
    # given a process of this kind, started on an embedded database
    url = f"sqlite+aiosqlite:///{tmp_path / 'passgate.db'}"
    migrate.upgrade(Settings(database_url=url))
    env = {**os.environ, "PASSGATE_ENVIRONMENT": "test", "PASSGATE_DATABASE_URL": url,
           "PASSGATE_REDIS_URL": ""}

    # when it decodes a document nested a hundred thousand levels deep
    done = subprocess.run(
        [sys.executable, "-c", _PROBE + _STARTS[process]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )

    # then the decoder stops at Python's default limit, and the process lives to say so
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "limit 1000 RecursionError" in done.stdout


class _NestedAnswer(BaseHTTPRequestHandler):
    """A server whose every answer is a 200 of a hundred thousand nested arrays."""

    def do_GET(self) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def nested_answers() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NestedAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_keys_cli_names_an_answer_nested_too_deeply_in_one_line(nested_answers: str) -> None:
    # given a server at PASSGATE_URL that answers with JSON nested a hundred thousand deep
    env = {**os.environ, "PASSGATE_URL": nested_answers, "PASSGATE_API_KEY": "ak_x",
           "PASSGATE_ENVIRONMENT": "test"}

    # when
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "keys", "list"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )

    # then one line says what is wrong, without a traceback
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip() == "Error: passgate answered 200 with something that is not JSON"
