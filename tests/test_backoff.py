"""hinode.backoff.Backoff: exponential, capped, equal jitter, resettable, independent per instance."""

from __future__ import annotations

import random
import statistics

import pytest

from hinode.backoff import Backoff, PahoReconnect


def test_delays_grow_exponentially_within_the_equal_jitter_band():
    backoff = Backoff(1.0, 60.0, random=random.Random(1))
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60]
    for attempt, ceiling in enumerate(ceilings, start=1):
        delay = backoff.next()
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)
        assert backoff.ceiling_s == ceiling
        assert backoff.attempts == attempt


def test_delays_are_spread_uniformly_over_the_upper_half_of_each_step():
    rng = random.Random(42)
    samples = []
    for _ in range(4000):
        backoff = Backoff(2.0, 10.0, random=rng)
        samples.append(backoff.next())
    # uniform on [1, 2]: mean 1.5, standard deviation 1/sqrt(12) ~ 0.289
    assert min(samples) >= 1.0 and max(samples) <= 2.0
    assert statistics.fmean(samples) == pytest.approx(1.5, abs=0.02)
    assert statistics.pstdev(samples) == pytest.approx(0.2887, abs=0.02)
    # both halves of the band are used about equally
    low = sum(1 for s in samples if s < 1.5)
    assert 0.45 < low / len(samples) < 0.55


def test_the_cap_is_never_exceeded_and_never_zero():
    backoff = Backoff(0.01, 0.5, factor=3.0, jitter=1.0, random=random.Random(7))
    delays = [backoff.next() for _ in range(500)]
    assert all(0 < d <= 0.5 for d in delays)
    assert backoff.ceiling_s == 0.5


def test_zero_jitter_is_the_plain_doubling():
    backoff = Backoff(0.25, 10.0, jitter=0.0)
    assert [backoff.next() for _ in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_reset_starts_again_from_the_initial_delay():
    backoff = Backoff(1.0, 30.0, random=random.Random(3))
    for _ in range(6):
        backoff.next()
    assert backoff.attempts == 6 and backoff.ceiling_s == 30.0
    backoff.reset()
    assert backoff.attempts == 0
    assert 0.5 <= backoff.next() <= 1.0
    assert backoff.attempts == 1


def test_two_instances_with_different_seeds_diverge():
    a = Backoff(1.0, 60.0, random=random.Random(1))
    b = Backoff(1.0, 60.0, random=random.Random(2))
    first, second = [a.next() for _ in range(10)], [b.next() for _ in range(10)]
    assert first != second
    assert all(x != y for x, y in zip(first, second))


def test_unseeded_instances_do_not_share_a_sequence():
    # agents that lost the same broker at the same moment must not reconnect in lockstep
    a, b = Backoff(1.0, 60.0), Backoff(1.0, 60.0)
    assert [a.next() for _ in range(5)] != [b.next() for _ in range(5)]


def test_same_seed_repeats_the_same_delays():
    a = Backoff(1.0, 60.0, random=random.Random(9))
    b = Backoff(1.0, 60.0, random=random.Random(9))
    assert [a.next() for _ in range(10)] == [b.next() for _ in range(10)]


@pytest.mark.parametrize("kwargs", [dict(initial_s=-1, max_s=1), dict(initial_s=2, max_s=1),
                                    dict(initial_s=1, max_s=2, factor=0.5), dict(initial_s=1, max_s=2, jitter=1.5),
                                    dict(initial_s=1, max_s=2, jitter=-0.1)])
def test_nonsense_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_delay_for_gives_the_nth_delay_without_counting_it():
    backoff = Backoff(1.0, 60.0, random=random.Random(4))
    for attempt, ceiling in zip(range(0, 10), [1, 1, 2, 4, 8, 16, 32, 60, 60, 60]):
        assert backoff.ceiling_for(attempt) == ceiling
        assert ceiling / 2 <= backoff.delay_for(attempt) <= ceiling
    assert backoff.attempts == 0 and backoff.ceiling_s == 0.0
    assert backoff.ceiling_for(10**9) == 60.0                     # no overflow for a huge count
    assert Backoff(0.0, 0.0).delay_for(5) == 0.0
    assert [Backoff(0.25, 10.0, jitter=0.0).delay_for(n) for n in range(1, 9)] == \
        [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_delay_for_draws_the_same_delays_as_next():
    counted, stateless = Backoff(0.5, 15.0, random=random.Random(8)), Backoff(0.5, 15.0, random=random.Random(8))
    assert [counted.next() for _ in range(9)] == [stateless.delay_for(n) for n in range(1, 10)]


class RecordingClient:
    """Stands in for paho's client: only what PahoReconnect calls."""

    def __init__(self):
        self.delays: list[tuple[float, float]] = []

    def reconnect_delay_set(self, min_delay, max_delay):
        self.delays.append((min_delay, max_delay))


def test_paho_reconnect_pins_pahos_delay_to_the_helpers_next_delay():
    client = RecordingClient()
    reconnect = PahoReconnect(client, 1.0, 8.0, random=random.Random(6))
    expected = Backoff(1.0, 8.0, random=random.Random(6))
    assert client.delays == [(1.0, 8.0)]
    for _ in range(5):
        reconnect.before_wait(client)
    reconnect.reset()
    reconnect.before_wait(client)
    wanted = [expected.next() for _ in range(5)]
    expected.reset()
    wanted.append(expected.next())
    assert client.delays[1:] == [(d, d) for d in wanted]
