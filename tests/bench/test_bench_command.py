"""`./hinode.sh bench`: the names it accepts are the benches bench/README.md documents, each with the
command that runs it from a fresh clone. Only the listing and the refusals run here: they answer before
hinode.sh installs anything, and PYTHON points nowhere so that a refusal that fell through to the
install step would stop at once (exit 1) instead of syncing .venv or running a bench."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "bench" / "README.md").read_text()


def hinode_sh(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": str(REPO / "no-such-python")}
    return subprocess.run([str(REPO / "hinode.sh"), *args], capture_output=True, text=True, env=env, timeout=30)


def sections() -> dict[str, str]:
    """bench/README.md's "## NAME.py" sections: name -> text up to the next "## "."""
    parts = re.split(r"^## ", README, flags=re.M)[1:]
    return {m.group(1): part for part in parts if (m := re.match(r"(\w+)\.py\b", part))}


def listed() -> list[str]:
    run = hinode_sh("bench", "--list")
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_the_list_is_the_documented_benches_and_each_section_runs_its_bench_through_hinode_sh():
    names = listed()
    assert names == list(sections()), "the benches are the '## NAME.py' sections of bench/README.md"
    for name in names:
        assert re.search(r'^if __name__ == "__main__":', (REPO / "bench" / f"{name}.py").read_text(), re.M), name
        runs = re.findall(rf"^\./hinode\.sh bench {name}(?: |$)", sections()[name], re.M)
        assert runs, f"bench/README.md '## {name}.py': no './hinode.sh bench {name} ...' line"
    stale = re.findall(r"^.*(?:\.venv/bin/python|python3?) bench/.*$", README, re.M)
    assert not stale, f"bench/README.md: run the benches with ./hinode.sh bench NAME, not {stale}"
    refused = set(re.findall(r"\./hinode\.sh bench (\w+)", (REPO / "README.md").read_text())) - {"NAME", *names}
    assert not refused, f"README.md names benches that ./hinode.sh bench refuses: {refused}"


def test_helpers_are_not_benches_and_every_runnable_script_is_a_bench_or_used_by_one():
    names = set(listed())
    assert not names & {"common", "edge_harness", "counter_meter", "forecast_history", "ocpp_load", "ocpp_bare_csms",
                        "fleet_harness", "fleet_publishers", "fleet_standin", "fleet_scenario"}
    scripts = {p.stem: p.read_text() for p in (REPO / "bench").glob("*.py")}
    for stem, text in scripts.items():
        if stem in names or 'if __name__ == "__main__":' not in text:
            continue
        users = [other for other, source in scripts.items() if other != stem and re.search(rf"\b{stem}\b", source)]
        assert users, (f"bench/{stem}.py runs on its own but is neither a bench nor used by one: "
                       f"give it a '## {stem}.py' section in bench/README.md to make it a bench")


def test_an_unknown_name_is_refused_with_the_valid_ones_before_anything_is_installed():
    names = listed()
    for wrong in ("no_such_bench", "forecast_history", "common", "../hinode"):
        run = hinode_sh("bench", wrong, "--seconds", "1")
        assert run.returncode == 2, (wrong, run.returncode, run.stderr)
        assert f"unknown bench '{wrong}'" in run.stderr, run.stderr
        assert all(name in run.stderr for name in names), run.stderr
        assert "installing" not in run.stderr and run.stdout == ""


def test_no_name_prints_the_usage_with_the_names():
    run = hinode_sh("bench")
    assert run.returncode == 2
    assert "usage: ./hinode.sh bench NAME [options]" in run.stderr
    assert all(name in run.stderr for name in listed()), run.stderr
