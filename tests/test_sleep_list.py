"""tests/README.md lists each fixed sleep left in the tests, by file and line; the list stays true."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_listed_fixed_sleep_is_still_a_sleep_at_that_line():
    rows = re.findall(r"^\| `(tests/[^`:]+):(\d+)` \|", (ROOT / "tests" / "README.md").read_text(), re.MULTILINE)
    assert len(rows) > 10
    stale = []
    for path, line in rows:
        lines = (ROOT / path).read_text().splitlines()
        number = int(line)
        if number > len(lines) or not any(call in lines[number - 1] for call in ("sleep(", "settle(")):
            stale.append(f"{path}:{line}")
    assert not stale, f"tests/README.md lists these as fixed sleeps, but no sleep is there any more: {stale}"
