"""Property tests of the key format: ``<prefix>_<base62 random><6-char base62 CRC32>``.

Pure functions, no database: every generated key parses, and any single-character change
(substitution, deletion, insertion) is refused by ``parse`` before anyone could look it up.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.credentials.format import KeyFormatError, KeyKind, generate, hint, parse
from tests.factories import BASE62, with_checksum

KINDS = st.sampled_from(list(KeyKind))
BODIES = st.text(alphabet=BASE62, min_size=27, max_size=60)
# What a typo can introduce: any base62 character, plus separators people paste.
TYPED = st.sampled_from(BASE62 + "_-. ")
PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def keys(draw: st.DrawFn) -> str:
    """Valid keys of every kind with bodies of any allowed length, checksummed independently."""
    kind = draw(KINDS)
    return with_checksum(f"{kind.value}_{draw(BODIES)}")


@PROPERTY
@given(KINDS)
def test_a_generated_key_parses_as_its_kind(kind):
    # given
    key = generate(kind)

    # when
    parsed = parse(key)

    # then
    assert parsed.kind is kind
    assert parsed.secret == key


@PROPERTY
@given(KINDS)
def test_a_generated_key_carries_at_least_160_random_bits(kind):
    # given
    key = generate(kind)

    # when
    random_part = key[len(kind.value) + 1 : -6]

    # then 62**27 > 2**160
    assert len(random_part) >= 27
    assert set(random_part) <= set(BASE62)


@PROPERTY
@given(keys())
def test_a_key_with_a_valid_crc32_checksum_parses(key):
    # when / then
    assert parse(key).secret == key


@PROPERTY
@given(keys(), st.data())
def test_substituting_one_character_is_rejected(key, data):
    # given one position replaced by a different character
    index = data.draw(st.integers(0, len(key) - 1))
    replacement = data.draw(TYPED.filter(lambda c: c != key[index]))
    mutated = key[:index] + replacement + key[index + 1 :]

    # when / then
    with pytest.raises(KeyFormatError):
        parse(mutated)


@PROPERTY
@given(keys(), st.data())
def test_deleting_one_character_is_rejected(key, data):
    # given
    index = data.draw(st.integers(0, len(key) - 1))
    mutated = key[:index] + key[index + 1 :]

    # when / then
    with pytest.raises(KeyFormatError):
        parse(mutated)


@PROPERTY
@given(keys(), st.data())
def test_inserting_one_character_is_rejected(key, data):
    # given
    index = data.draw(st.integers(0, len(key)))
    mutated = key[:index] + data.draw(TYPED) + key[index:]

    # when / then
    with pytest.raises(KeyFormatError):
        parse(mutated)


@PROPERTY
@given(keys(), st.data())
def test_swapping_two_adjacent_characters_is_rejected(key, data):
    # given two neighbouring, different characters exchanged (the commonest typo)
    index = data.draw(st.integers(0, len(key) - 2).filter(lambda i: key[i] != key[i + 1]))
    mutated = key[:index] + key[index + 1] + key[index] + key[index + 2 :]

    # when / then
    with pytest.raises(KeyFormatError):
        parse(mutated)


@PROPERTY
@given(st.text(max_size=200))
def test_parsing_arbitrary_text_only_ever_raises_a_format_error(text):
    # when / then: no other exception type escapes, whatever the input
    with contextlib.suppress(KeyFormatError):
        parse(text)


@PROPERTY
@given(KINDS)
def test_the_hint_shows_only_the_prefix_and_last_four_characters(kind):
    # given
    key = generate(kind)

    # when
    shown = hint(key)

    # then
    assert shown == f"{kind.value}_...{key[-4:]}"


def test_an_overlong_key_is_rejected():
    # given a valid checksum over a body too long to be a key
    key = with_checksum("ak_" + "a" * 200)

    # when / then
    with pytest.raises(KeyFormatError):
        parse(key)


def test_an_unknown_prefix_is_rejected():
    # given a well-checksummed key with a prefix passgate never issues
    key = with_checksum("sk_" + "a" * 27)

    # when / then
    with pytest.raises(KeyFormatError):
        parse(key)
