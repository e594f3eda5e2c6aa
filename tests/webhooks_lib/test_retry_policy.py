from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from webhooks.retry_policy import DEFAULT_DELAYS, RetrySchedule, should_disable_endpoint


def highest(low: float, high: float) -> float:
    return high


def lowest(low: float, high: float) -> float:
    return low


def test_the_default_schedule_matches_the_contract() -> None:
    schedule = RetrySchedule()

    assert schedule.delays == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert schedule.max_attempts == 8


@pytest.mark.parametrize("attempts_made", range(1, len(DEFAULT_DELAYS) + 1))
def test_each_delay_stays_within_twenty_percent_jitter(attempts_made: int) -> None:
    schedule = RetrySchedule()
    base = DEFAULT_DELAYS[attempts_made - 1]

    samples = [schedule.next_delay(attempts_made) for _ in range(200)]

    assert all(s is not None and 0.8 * base <= s <= 1.2 * base for s in samples)
    assert len(set(samples)) > 1  # jitter actually varies


def test_the_message_fails_once_the_attempts_are_exhausted() -> None:
    schedule = RetrySchedule()

    assert schedule.next_delay(7) is not None
    assert schedule.next_delay(8) is None
    assert schedule.next_delay(0) is None


def test_tests_can_compress_the_schedule_by_a_factor() -> None:
    schedule = RetrySchedule(uniform=highest).scaled(0.001)

    assert schedule.next_delay(1) == pytest.approx(0.006)
    assert schedule.next_delay(7) == pytest.approx(43.2)
    assert schedule.max_retry_after == pytest.approx(86.4)


def test_an_explicit_list_replaces_the_schedule() -> None:
    schedule = RetrySchedule.from_delays([0.05, 0.1], jitter=0)

    assert [schedule.next_delay(n) for n in (1, 2, 3)] == [0.05, 0.1, None]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_longer_retry_after_wins_for_throttling_statuses(status: int) -> None:
    schedule = RetrySchedule(uniform=highest)

    assert schedule.next_delay(1, status_code=status, retry_after=600) == 600


def test_a_shorter_retry_after_never_speeds_up_the_schedule() -> None:
    schedule = RetrySchedule(uniform=lowest)

    assert schedule.next_delay(2, status_code=429, retry_after=1) == 240


def test_retry_after_is_capped() -> None:
    schedule = RetrySchedule(uniform=lowest)

    assert schedule.next_delay(1, status_code=503, retry_after=10**9) == 24 * 3600


def test_retry_after_is_ignored_for_other_statuses() -> None:
    schedule = RetrySchedule(uniform=lowest)

    assert schedule.next_delay(1, status_code=500, retry_after=600) == 4


def test_invalid_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetrySchedule(jitter=1.5)
    with pytest.raises(ValueError, match="negative"):
        RetrySchedule(delays=(-1,))


NOW = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)


def test_an_endpoint_without_a_failure_streak_stays_enabled() -> None:
    assert not should_disable_endpoint(None, NOW)


def test_an_endpoint_failing_for_five_days_is_disabled() -> None:
    assert not should_disable_endpoint(NOW - timedelta(days=4, hours=23), NOW)
    assert should_disable_endpoint(NOW - timedelta(days=5), NOW)


def test_the_disable_threshold_is_configurable() -> None:
    assert should_disable_endpoint(NOW - timedelta(seconds=2), NOW, timedelta(seconds=1))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        should_disable_endpoint(datetime(2026, 3, 20), NOW)
