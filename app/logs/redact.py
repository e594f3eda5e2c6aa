"""The safety net under every log line: nothing shaped like a passgate secret gets out.

passgate never logs a secret on purpose. This catches the accidents: a key echoed in an
exception message, a claim code in an access-log path, a signature in a traceback. It runs
on the finished line (message, exception text and all), so no field escapes it.

What it recognises:

- keys by their prefixes (``ak_ gw_ pk_ pass_ mk_ adm_``), claim codes (``clm_``), claim
  tokens (``clt_``) and webhook secrets (``whsec_``), each followed by its random part;
- ``0x`` hex of 65 bytes or more: an EIP-3009 signature, or calldata or a raw transaction
  carrying one (32-byte hex, a transaction hash or nonce, stays readable);
- the configured secrets themselves, whatever their shape: the pepper, the admin token, the
  signer's private key, the metrics token, the gateway providers' header values;
- a path segment that is a secret by position (``/v1/claims/{claimCode}``), even mistyped,
  since a near miss still gives most of a code away;
- query parameters whose name says they carry a secret (``key``, ``token``, ``code``...),
  whoever they are meant for (a gateway call's upstream query included).

Access lines name the route template, never the raw path or query
(``app.metrics.request_observer``); the last two rules are for URLs that reach a log some other
way (an exception's text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# Prefixes of every secret passgate issues (tests check them against the key kinds).
SECRET_PREFIXES = ("ak", "gw", "pk", "pass", "mk", "adm", "clm", "clt")
# Paths whose next segment is a secret (the route's path parameter).
SECRET_PATH_SEGMENTS = ("/v1/claims/",)
SECRET_QUERY_NAMES = (
    "key", "api_key", "apikey", "api-key", "token", "access_token", "claim_token", "claimtoken",
    "claim_code", "claimcode", "code", "secret", "client_secret", "password", "signature",
    "sig", "master_key",
)
# Literals shorter than this would redact ordinary words; real secrets are far longer.
_MIN_LITERAL = 8

# Substrings every match contains: a line with none of them (nearly every line) is passed
# over with a few substring searches instead of a regular-expression scan (~1 us, not ~40).
_MARKERS = ("ak_", "gw_", "pk_", "pass_", "mk_", "adm_", "clm_", "clt_", "whsec_", "0x",
            *SECRET_PATH_SEGMENTS, "?", "&")
_PATTERNS = (
    r"\b(?P<key>(?:ak|gw|pk|pass|mk|adm|clm)_)[0-9A-Za-z]{16,}",
    r"\b(?P<token>clt_)[A-Za-z0-9_\-]{16,}",
    r"\b(?P<whsec>whsec_)[A-Za-z0-9+/=]{16,}",
    r"(?P<hex>0x)[0-9a-fA-F]{130,}",
    # A segment that starts with "{" is a route template's parameter, not a value.
    "(?P<path>" + "|".join(re.escape(p) for p in SECRET_PATH_SEGMENTS) + r")(?!\{)[^/?#\s\"']+",
    r"(?i:(?P<query>[?&;](?:" + "|".join(re.escape(n) for n in SECRET_QUERY_NAMES)
    + r")=))[^&;#\s\"']*",
)


class Redactor:
    """Replaces secret-shaped values and the given literal secrets in a string."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        kept = {w for w in literals if len(w) >= _MIN_LITERAL}
        # Also as they read inside a JSON string, where quotes and backslashes are escaped.
        kept |= {json.dumps(w, ensure_ascii=False)[1:-1] for w in kept}
        words = sorted(kept, key=len, reverse=True)
        self._markers = (*_MARKERS, *words)
        parts = list(_PATTERNS)
        if words:
            parts.append("(?P<literal>" + "|".join(re.escape(w) for w in words) + ")")
        self._pattern = re.compile("|".join(parts))

    def __call__(self, text: str) -> str:
        for marker in self._markers:
            if marker in text:
                return self._pattern.sub(_replacement, text)
        return text


def _replacement(match: re.Match[str]) -> str:
    kept = match.group("key") or match.group("token") or match.group("whsec") or \
        match.group("hex") or match.group("path") or match.group("query") or ""
    return kept + REDACTED


redact = Redactor()
"""The shape rules alone (no configured secrets): for text that is not a log line."""
