"""The discovery listing's query: the spec's filters and page, read strictly from the raw query.

``GET /v1/discovery/resources`` takes the parameters of x402's ``GET /discovery/resources``
(``type``, ``payTo``, ``scheme``, ``network``, ``extensions``, ``limit``, ``offset``) and
passgate's ``resource`` (a case-insensitive substring of the resource URL). Every filter given
is applied; a well-formed value that matches nothing is an empty page. A malformed value, an
unknown or repeated parameter, or a page out of range is a 400 naming it, so a filter is never
silently ignored.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl

from app.errors import ValidationFailed

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 999_999_999
MAX_VALUE = 256
MAX_FIELDS = 16

_WORD = re.compile(r"[a-z0-9][a-z0-9-]{0,31}", re.ASCII)
_CAIP2 = re.compile(r"[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}", re.ASCII)
_ADDRESS = re.compile(r"[A-Za-z0-9]{1,128}", re.ASCII)
_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_LIMIT = re.compile(r"[0-9]{1,3}", re.ASCII)
_OFFSET = re.compile(r"[0-9]{1,9}", re.ASCII)

PARAMETERS = ("type", "payTo", "scheme", "network", "extensions", "resource", "limit", "offset")


@dataclass(frozen=True, slots=True)
class DiscoveryQuery:
    """What to list: filters (None: not filtered on) and the page."""

    type: str | None = None
    pay_to: str | None = None
    scheme: str | None = None
    network: str | None = None
    extension: str | None = None
    resource: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _pairs(query_string: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query_string.decode("ascii"), keep_blank_values=True,
                         strict_parsing=False, encoding="utf-8", errors="strict",
                         max_num_fields=MAX_FIELDS)
    except UnicodeError:
        raise ValidationFailed("The query string must be percent-encoded UTF-8.") from None
    except ValueError:
        raise ValidationFailed(f"At most {MAX_FIELDS} query parameters are accepted.") from None


def _matching(name: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    if pattern.fullmatch(value) is None:
        raise ValidationFailed(f"'{name}' must be {what}.", details={"parameter": name})
    return value


def _resource(value: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value):
        raise ValidationFailed("'resource' may not contain control or unassigned characters.",
                               details={"parameter": "resource"})
    return unicodedata.normalize("NFKC", value).casefold()


def parse_discovery_query(query_string: bytes) -> DiscoveryQuery:
    """The listing's query from the raw query string; ValidationFailed (400) naming what is
    wrong with it."""
    values: dict[str, str] = {}
    for name, value in _pairs(query_string):
        if name not in PARAMETERS:
            raise ValidationFailed(
                f"Unknown query parameter '{name[:40]}'; use {', '.join(PARAMETERS)}.",
                details={"parameter": name[:40]},
            )
        if name in values:
            raise ValidationFailed(f"'{name}' is given more than once.",
                                   details={"parameter": name})
        if not value or len(value) > MAX_VALUE:
            raise ValidationFailed(f"'{name}' must have 1 to {MAX_VALUE} characters.",
                                   details={"parameter": name})
        values[name] = value
    get = values.get
    limit = _matching("limit", get("limit", str(DEFAULT_LIMIT)), _LIMIT,
                      f"an integer from 1 to {MAX_LIMIT}")
    if not 1 <= int(limit) <= MAX_LIMIT:
        raise ValidationFailed(f"'limit' must be an integer from 1 to {MAX_LIMIT}.",
                               details={"parameter": "limit"})
    offset = _matching("offset", get("offset", "0"), _OFFSET,
                       f"an integer from 0 to {MAX_OFFSET}")
    kind = get("type")
    scheme = get("scheme")
    network = get("network")
    pay_to = get("payTo")
    extension = get("extensions")
    resource = get("resource")
    return DiscoveryQuery(
        type=None if kind is None else _matching(
            "type", kind.lower(), _WORD, "a resource type such as 'http'"),
        scheme=None if scheme is None else _matching(
            "scheme", scheme.lower(), _WORD, "a payment scheme such as 'exact'"),
        network=None if network is None else _matching(
            "network", network, _CAIP2, "a CAIP-2 network such as 'eip155:8453'"),
        pay_to=None if pay_to is None else _matching(
            "payTo", pay_to, _ADDRESS, "a payment address such as '0x…'"),
        extension=None if extension is None else _matching(
            "extensions", extension, _EXTENSION, "an extension key such as 'bazaar'"),
        resource=None if resource is None else _resource(resource),
        limit=int(limit),
        offset=int(offset),
    )
