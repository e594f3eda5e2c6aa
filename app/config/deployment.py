"""What a production process refuses to start with, and PASSGATE_* variables nobody reads.

``deployment_problems`` is checked by every command that serves or works (``serve``,
``worker``, ``scheduler``, the ``admin`` tools, which mint keys under the pepper) and by
``passgate config check``; outside production it finds nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from app.config.problems import ENV_PREFIX, Problem, SettingsError, example_of, variable
from app.settings import DEV_PEPPER, Settings

# A pepper this long is out of reach of guessing whatever its alphabet.
MIN_PRODUCTION_PEPPER = 32

# PASSGATE_* variables read outside the settings object (the key holder's CLI, the dev chain).
OTHER_VARIABLES: dict[str, str] = {
    "PASSGATE_API_KEY": "your key, for `passgate keys ...`",
    "PASSGATE_URL": "the passgate the `keys` commands talk to (default PASSGATE_PUBLIC_URL)",
    "PASSGATE_ANVIL": "an anvil binary for `passgate devchain` and the tests",
}


def _problem(field: str, message: str) -> Problem:
    return Problem(field, message, example_of(Settings.model_fields[field]))


def deployment_problems(settings: Settings) -> list[Problem]:
    """Production only: a pepper of its own, and a signer when x402 payments are taken."""
    if settings.environment != "production":
        return []
    problems = []
    pepper = settings.key_pepper.get_secret_value()
    if pepper == DEV_PEPPER:
        problems.append(_problem(
            "key_pepper",
            "production refuses the public development pepper: it keys every stored key's "
            "hash and the AES-GCM box for webhook secrets, provider credentials and replayable "
            "results"))
    elif len(pepper) < MIN_PRODUCTION_PEPPER:
        problems.append(_problem(
            "key_pepper",
            f"production needs at least {MIN_PRODUCTION_PEPPER} characters, got {len(pepper)}"))
    if settings.takes_x402_payments and settings.chain_signer_private_key is None:
        problems.append(_problem(
            "chain_signer_private_key",
            "production takes x402 payments (PASSGATE_CHAIN_RPC_URLS and "
            "PASSGATE_CHAIN_PAY_TO_ADDRESS are set) but has no settlement signer to settle "
            "signed ones"))
    return problems


def require_deployable(settings: Settings) -> Settings:
    problems = deployment_problems(settings)
    if problems:
        raise SettingsError(problems)
    return settings


def unknown_variables(environ: Mapping[str, str], fields: Iterable[str]) -> list[Problem]:
    """``PASSGATE_*`` variables that are set but read by nothing (a typo is silently ignored)."""
    known = {variable(name) for name in fields} | set(OTHER_VARIABLES)
    problems = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(Problem(name[len(ENV_PREFIX):].lower(),
                                f"is set but is not a passgate setting{hint}"))
    return problems
