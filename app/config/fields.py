"""Value shapes the settings share: environment text for lists and maps, CIDRs, URLs, keys.

Every check raises ``ValueError`` with a message that never repeats a secret: URLs may carry
passwords or API keys, so their text is never echoed, and neither is a key.
"""

from __future__ import annotations

import ipaddress
import json
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from eth_keys.constants import SECPK1_N
from pydantic import AfterValidator, BaseModel, BeforeValidator, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from chain.networks import NETWORK_NAMES

# -- environment text -------------------------------------------------------------------------

Shape = Literal["list", "json_list", "json", "plain"]


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); ``Annotated[X, ...]`` -> X."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])[0], True
    return annotation, False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def shape_of(annotation: Any) -> tuple[Shape, bool]:
    """How a field's value is written in the environment, and whether it may be unset.

    Lists of plain values take JSON or comma-separated text; lists of objects, maps and objects
    take JSON only.
    """
    inner, optional = _strip_optional(annotation)
    origin = get_origin(inner)
    if origin in (list, tuple, set, frozenset):
        args = get_args(inner)
        item = _strip_optional(args[0])[0] if args else Any
        return ("json_list" if _is_model(item) or get_origin(item) is dict else "list"), optional
    if origin is dict or _is_model(inner):
        return "json", optional
    return "plain", optional


def decode_env_text(shape: Shape, text: str) -> Any:
    """Turn an environment variable's text into the value its field expects."""
    stripped = text.strip()
    if shape == "list":
        if stripped.startswith("["):
            return _json(stripped, list, "a JSON list")
        return [item.strip() for item in stripped.split(",") if item.strip()]
    if shape == "json_list":
        return _json(stripped or "[]", list, "a JSON list")
    return _json(stripped or "{}", dict, "a JSON object")


def _json(text: str, kind: type, name: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        # The decoder's message gives the position only, never the text.
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos + 1})") from None
    if not isinstance(value, kind):
        raise ValueError(f"must be {name}")
    return value


# -- networks, addresses, URLs ----------------------------------------------------------------


def _ip_network(text: str) -> str:
    try:
        # strict=False: "127.0.0.1/8" is a common way to write 127.0.0.0/8.
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{text[:60]!r} is not an IP address or network (CIDR)") from None


def _network_name(name: str) -> str:
    if name not in NETWORK_NAMES:
        raise ValueError(f"unknown network {name[:40]!r} (known: {', '.join(NETWORK_NAMES)})")
    return name


def _http_url(text: str) -> str:
    parsed = urlsplit(text.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an absolute http(s) URL")
    return text.strip()


def _public_url(text: str) -> str:
    url = _http_url(text)
    parsed = urlsplit(url)
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ValueError("takes no query, fragment or credentials")
    return url.rstrip("/")


def _rpc_urls(text: str) -> str:
    urls = [url.strip() for url in text.split(",") if url.strip()]
    if not urls:
        raise ValueError("no RPC URL given")
    for position, url in enumerate(urls, start=1):
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            # Never the URL itself: hosted RPC URLs carry API keys.
            raise ValueError(f"URL {position} is not an absolute http(s) URL")
    return ",".join(urls)


_DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


def _database_url(text: str) -> str:
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError("is not a database URL") from None
    if url.drivername not in _DATABASE_DRIVERS:
        raise ValueError(f"the driver must be one of {', '.join(_DATABASE_DRIVERS)}")
    if url.drivername.startswith("postgresql") and not (url.host or url.query.get("host")):
        raise ValueError("names no PostgreSQL host")
    return text


def _redis_url(text: str) -> str:
    if text and urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL (or empty for embedded)")
    return text


def _signer_key(secret: SecretStr) -> SecretStr:
    """A secp256k1 private key: 32 bytes of hex (``0x`` optional), 0 < key < the curve order."""
    text = secret.get_secret_value().strip()
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not re.fullmatch(r"[0-9a-fA-F]*", digits):
        raise ValueError("must be 32 bytes of hex (64 hex digits, 0x optional)")
    if len(digits) != 64:
        # The length says what is wrong without saying anything about the key.
        raise ValueError(f"must be 32 bytes of hex (64 hex digits), got {len(digits)}")
    if not 0 < int(digits, 16) < SECPK1_N:
        raise ValueError("is not a valid secp256k1 private key (out of the curve's range)")
    return SecretStr("0x" + digits.lower())


def _log_level(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


IpNetwork = Annotated[str, AfterValidator(_ip_network)]
NetworkName = Annotated[str, AfterValidator(_network_name)]
HttpUrl = Annotated[str, AfterValidator(_public_url)]
RpcUrls = Annotated[str, AfterValidator(_rpc_urls)]
DatabaseUrl = Annotated[str, AfterValidator(_database_url)]
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
SignerKey = Annotated[SecretStr, AfterValidator(_signer_key)]
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_log_level)
]

__all__ = [
    "DatabaseUrl",
    "HttpUrl",
    "IpNetwork",
    "LogLevel",
    "NetworkName",
    "RedisUrl",
    "RpcUrls",
    "Shape",
    "SignerKey",
    "decode_env_text",
    "shape_of",
]
