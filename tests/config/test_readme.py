"""Every ``PASSGATE_*`` variable the code reads has a row in a README table, and every row names
one it reads: a setting added without its row (or removed with its row left) fails here.

Read = a field of ``Settings`` (``PASSGATE_<FIELD>``), or a ``PASSGATE_*`` name looked up in the
environment directly anywhere in app/, workers/, chain/ or webhooks/. A row is a Markdown table
row whose first cell names the variable(s) in backticks; it needs a default and a meaning.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.config.deployment import OTHER_VARIABLES
from app.config.problems import variable
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("app", "workers", "chain", "webhooks")
# os.environ["X"], os.environ.get("X"), os.getenv("X"), environ.setdefault("X"), click's envvar=
_DIRECT_READ = re.compile(
    r"""(?:environ(?:\.get|\.setdefault)?\s*[\[(]|getenv\s*\(|envvar\s*=\s*)\s*"""
    r"""["'](PASSGATE_[A-Z0-9_]+)["']"""
)
_NAME_IN_CELL = re.compile(r"`(PASSGATE_[A-Z0-9_]+)`")


def read_directly() -> set[str]:
    found: set[str] = set()
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            found.update(_DIRECT_READ.findall(path.read_text(encoding="utf-8")))
    return found


def read_by_the_code() -> set[str]:
    return {variable(name) for name in Settings.model_fields} | read_directly()


def readme_rows() -> dict[str, list[str]]:
    """Variable -> the cells of the table row that documents it."""
    rows: dict[str, list[str]] = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for name in _NAME_IN_CELL.findall(cells[0]):
            rows[name] = cells
    return rows


def test_the_scan_finds_the_variables_read_outside_the_settings():
    # A scan that found nothing could not catch a new direct read.
    assert {"PASSGATE_API_KEY", "PASSGATE_URL", "PASSGATE_ANVIL"} <= read_directly()


def test_every_variable_the_code_reads_has_a_readme_row():
    missing = sorted(read_by_the_code() - set(readme_rows()))

    assert not missing, f"add a row (name | default | meaning) to README.md for: {missing}"


def test_every_readme_row_names_a_variable_the_code_reads():
    stale = sorted(set(readme_rows()) - read_by_the_code())

    assert not stale, f"README.md documents variables nothing reads: {stale}"


def test_every_row_gives_a_default_and_a_meaning():
    incomplete = sorted(name for name, cells in readme_rows().items()
                        if len(cells) < 3 or not cells[1] or not cells[2])

    assert not incomplete, f"rows without a default or a meaning: {incomplete}"


def test_config_check_knows_every_variable_read_outside_the_settings():
    # Else `passgate config check` would call a variable the code reads unknown.
    assert read_directly() <= set(OTHER_VARIABLES)
