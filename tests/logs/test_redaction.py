"""The redaction safety net: a secret that reaches a log record is replaced in the line."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from eth_account import Account

from app.credentials.format import KeyKind, generate
from app.logs.configure import logging_config
from app.logs.handlers import flush_all
from app.settings import Settings
from webhooks.signing import generate_secret

SIGNATURE = "0x" + "ab" * 65
TX_HASH = "0x" + "cd" * 32


@pytest.fixture
def signer_key() -> str:
    return Account.create().key.hex()


@pytest.fixture
def output(signer_key: str) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    settings = Settings(log_format="json", key_pepper="pepper-" + "q" * 30,
                        admin_token="operator-token-" + "z" * 20,
                        chain_signer_private_key=signer_key)
    logging.config.dictConfig(logging_config(settings, stream))
    yield stream
    logging.config.dictConfig(logging_config(Settings()))


def test_every_key_kind_claim_code_webhook_secret_and_signature_is_redacted(output):
    # Given secrets of every shape passgate hands out
    secrets = [generate(kind) for kind in KeyKind]
    secrets += ["clm_" + "Ab3" * 8, "clt_" + "x-Y_" * 8, generate_secret(), SIGNATURE]

    # When code logs them, in the message and in an exception
    log = logging.getLogger("passgate.test")
    log.warning("leaked %s", " ".join(secrets))
    try:
        raise ValueError(f"bad value {secrets[0]}")
    except ValueError:
        log.exception("failed")
    flush_all()

    # Then none of them is in the output, each replaced where it stood
    text = output.getvalue()
    assert all(secret not in text for secret in secrets)
    assert "ak_[REDACTED]" in text
    assert "whsec_[REDACTED]" in text
    assert "0x[REDACTED]" in text


def test_configured_secrets_are_redacted_whatever_their_shape(output, signer_key):
    # When the pepper, the admin token and the signer key reach a log line
    logging.getLogger("passgate.test").error(
        "values: %s %s %s %s", "pepper-" + "q" * 30, "operator-token-" + "z" * 20, signer_key,
        signer_key.removeprefix("0x"))
    flush_all()

    # Then none of them is written
    text = output.getvalue()
    assert "q" * 30 not in text
    assert "z" * 20 not in text
    assert signer_key.removeprefix("0x") not in text


def test_transaction_hashes_and_ids_stay_readable(output):
    # When a line names a transaction hash, a key id and a hint
    logging.getLogger("passgate.test").info("tx %s key key_01ABC hint pk_...a1B2 passgate_x",
                                            TX_HASH)
    flush_all()

    # Then it is written unchanged
    assert f"tx {TX_HASH} key key_01ABC hint pk_...a1B2 passgate_x" in output.getvalue()


def test_a_configured_secret_with_quotes_is_redacted_from_json_lines():
    # Given a pepper with characters JSON escapes
    stream = io.StringIO()
    pepper = 'pep"per\\with-quotes-and-backslash'
    logging.config.dictConfig(logging_config(Settings(log_format="json", key_pepper=pepper),
                                             stream))
    try:
        # When it reaches a log line
        logging.getLogger("passgate.test").error("pepper is %s", pepper)
        flush_all()
    finally:
        logging.config.dictConfig(logging_config(Settings()))

    # Then the line is still JSON, without it
    text = stream.getvalue()
    assert "with-quotes-and-backslash" not in text
    assert json.loads(text.splitlines()[-1])["message"] == "pepper is [REDACTED]"
