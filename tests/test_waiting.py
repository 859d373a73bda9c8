"""The one wait helper: an answer that is not ready yet is "not yet", and a timeout says what was awaited."""

import pytest

from tests.support.waiting import wait_until


def test_a_null_count_from_a_restarting_database_is_not_yet_not_a_failure():
    """Found in a CI-like run: InfluxDB, just restarted, answered a count with null and
    `int + None` raised TypeError out of the fault test's wait."""
    answers = iter([None, 5])
    seen = []

    def stored_total():
        count = next(answers)
        seen.append(count)
        return 10 + count            # TypeError on the first call

    assert wait_until(stored_total, "stored total", timeout=5, interval=0.01) == 15
    assert seen == [None, 5]


def test_a_timeout_names_what_was_awaited_and_the_last_answer():
    with pytest.raises(AssertionError, match=r"waiting for 40 envelopes \(last: KeyError\('meter-1'\)\)"):
        wait_until(lambda: {}["meter-1"], "40 envelopes", timeout=0.2, interval=0.01)
