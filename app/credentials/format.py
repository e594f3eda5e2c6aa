"""API key format: ``<prefix>_<base62 random, >= 160 bits><6-char base62 CRC32>``.

The checksum lets a mistyped or made-up key be refused without touching the database, and the
fixed prefixes let secret scanners recognise leaked keys.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass
from enum import StrEnum

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 62**27 > 2**160, so 27 base62 characters carry at least 160 random bits.
RANDOM_CHARS = 27
CHECKSUM_CHARS = 6
MAX_KEY_CHARS = 128


class KeyKind(StrEnum):
    """What a key is for; the value is its prefix."""

    AGENT = "ak"
    GATEWAY = "gw"
    PERSONAL = "pk"
    PASS = "pass"  # noqa: S105  (a key prefix, not a password)
    MASTER = "mk"
    ADMIN = "adm"


_KEY_RE = re.compile(r"^(ak|gw|pk|pass|mk|adm)_([0-9A-Za-z]+)$")


class KeyFormatError(ValueError):
    """The string is not a well-formed passgate key."""


@dataclass(frozen=True, slots=True)
class ParsedKey:
    kind: KeyKind
    secret: str


def _base62(number: int, width: int) -> str:
    chars = []
    while number:
        number, rest = divmod(number, 62)
        chars.append(BASE62[rest])
    return "".join(reversed(chars)).rjust(width, "0")


def checksum(head: str) -> str:
    """The 6-character checksum of ``<prefix>_<random>``."""
    return _base62(zlib.crc32(head.encode("ascii")), CHECKSUM_CHARS)


def generate(kind: KeyKind) -> str:
    """A fresh random key of the given kind."""
    body = "".join(secrets.choice(BASE62) for _ in range(RANDOM_CHARS))
    head = f"{kind.value}_{body}"
    return head + checksum(head)


def parse(key: str) -> ParsedKey:
    """Check shape and checksum; raise ``KeyFormatError`` with a reason otherwise."""
    if len(key) > MAX_KEY_CHARS:
        raise KeyFormatError("API key is too long.")
    match = _KEY_RE.match(key)
    if match is None:
        raise KeyFormatError("API key is malformed.")
    body = match.group(2)
    if len(body) < RANDOM_CHARS + CHECKSUM_CHARS:
        raise KeyFormatError("API key is too short.")
    head, check = key[:-CHECKSUM_CHARS], key[-CHECKSUM_CHARS:]
    if not secrets.compare_digest(checksum(head), check):
        raise KeyFormatError("API key checksum does not match; the key was mistyped or altered.")
    return ParsedKey(kind=KeyKind(match.group(1)), secret=key)


def hint(key: str) -> str:
    """What may be shown of a key after creation: prefix and last four characters."""
    prefix = key.split("_", 1)[0]
    return f"{prefix}_...{key[-4:]}"
