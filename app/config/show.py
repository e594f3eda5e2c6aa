"""The effective settings as ``PASSGATE_X=value`` lines, with every secret masked.

Masked: ``SecretStr`` values (pepper, admin token, signer key, provider headers), any setting
whose name says it is secret, and the secret-shaped parts of URLs: a password, the value of a
query parameter named like a credential, and a path segment shaped like an API key (hosted
RPC providers put theirs in the path, e.g. ``/v2/<key>``).
"""

from __future__ import annotations

import re
import shlex
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

from app.config.problems import env_text, variable
from app.settings import Settings

MASK = "********"
_SECRET_NAME = re.compile(r"(^|_)(token|secret|password|pepper|private|credentials?)(_|$)")
_SECRET_QUERY = re.compile(r"key|token|secret|pass|auth|sig", re.IGNORECASE)
# 20+ URL-safe characters mixing letters and digits: an API key, not a word or a file name.
_TOKEN_SEGMENT = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_-]{20,}$")


def mask_url(text: str) -> str:
    """``text`` with a URL's password, credential-like query values and key-like path
    segments masked; comma-separated URLs are masked one by one."""
    if "," in text:
        return ",".join(mask_url(part) for part in text.split(","))
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return text
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}"
    path = "/".join(MASK if _TOKEN_SEGMENT.match(seg) else seg for seg in parts.path.split("/"))
    query = urlencode(
        [(name, MASK if _SECRET_QUERY.search(name) else value)
         for name, value in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def masked(value: Any) -> Any:
    """A copy of ``value`` safe to print."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        # JSON mode writes SecretStr fields (provider headers) as asterisks.
        return masked(value.model_dump(mode="json"))
    if isinstance(value, str):
        return mask_url(value) if "://" in value else value
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    return value


def settings_lines(settings: Settings) -> list[str]:
    """One ``PASSGATE_X=value`` line per setting, shell-quoted, defaults marked."""
    lines = []
    for name in Settings.model_fields:
        shown = masked(getattr(settings, name))
        if _SECRET_NAME.search(name) and isinstance(shown, str) and shown:
            shown = MASK
        text = env_text(shown) or ""
        line = f"{variable(name)}={shlex.quote(text) if text else ''}"
        if name not in settings.model_fields_set:
            line += "  # default"
        lines.append(line)
    return lines
