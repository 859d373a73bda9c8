"""Every third-party package our code imports is declared where its part is installed from.

A package that is only present because another one depends on it (numpy through pvlib, Pillow through
matplotlib) disappears the day that other package drops it, and an install with only one extra (the
edge-only Raspberry Pi) never sees it. So each `import X` / `from X import ...` in our packages must map
(importlib.metadata.packages_distributions) to a distribution that pyproject.toml declares in the base
dependencies or in an extra that part is installed with: edge_agent with `edge`, cloud with `cloud`,
and so on; hinode's `up` modules and bench/ with what `./hinode.sh up` / `./hinode.sh bench` install.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])
OURS = {"hinode", "edge_agent", "cloud", "simulators", "dashboards", "device_profiles", "bench", "tests"}

# What each of our parts is installed with besides the base dependencies (hinode/up*.py and bench/:
# read from hinode.sh, see extras_of).
PART_EXTRAS = {"hinode": [], "device_profiles": [], "edge_agent": ["edge"], "cloud": ["cloud"],
               "simulators": ["simulators"], "dashboards": ["dashboards"]}

# Import names that need no declaration: name -> the reason.
ALLOWED: dict[str, str] = {}


@functools.cache
def hinode_sh_extras(command: str) -> list[str]:
    """The extras `./hinode.sh COMMAND` installs (its `ensure_python --extra ...` line)."""
    script = (REPO / "hinode.sh").read_text()
    branch = re.search(rf"^\s*{command}\)\n(.*?)^\s*;;", script, re.S | re.M)
    assert branch, f"hinode.sh: no '{command})' branch"
    extras = re.findall(r"--extra (\w+)", branch.group(1))
    assert extras, f"hinode.sh: the '{command})' branch installs no extra"
    return extras


def extras_of(path: Path) -> tuple[str, list[str]]:
    """(who installs the file's part, for messages; the extras installed with it besides the base dependencies)."""
    rel = path.relative_to(REPO)
    part = rel.parts[0]
    if part == "hinode" and rel.name.startswith("up"):
        return "./hinode.sh up installs", hinode_sh_extras("up")       # up*.py run only under `hinode up`
    if part == "bench":
        return "./hinode.sh bench installs", hinode_sh_extras("bench")
    return f"{part}/ is installed with", PART_EXTRAS[part]


def declared(extras: list[str]) -> set[str]:
    """Canonical distribution names of the base dependencies plus the extras (self-references resolved)."""
    optional = PYPROJECT["project"]["optional-dependencies"]
    names: set[str] = set()
    todo = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in extras:
        assert extra in optional, f"pyproject.toml: no extra {extra!r} (hinode.sh installs it)"
        todo += [Requirement(r) for r in optional[extra]]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name == PROJECT:
            todo += [Requirement(r) for extra in req.extras for r in optional[extra]]
        else:
            names.add(name)
    return names


def imports(path: Path):
    """(line, top-level import name) of every absolute import in the file, function-level ones included."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def is_local(path: Path, name: str) -> bool:
    """bench/ scripts import their neighbours (common, edge_harness, tbgw/) by file name."""
    here = path.parent
    return (here / f"{name}.py").is_file() or (here / name / "__init__.py").is_file() or (here / name).is_dir()


def undeclared_imports() -> list[str]:
    distributions = importlib.metadata.packages_distributions()
    problems = []
    files = [f for part in [*PART_EXTRAS, "bench"] for f in sorted((REPO / part).rglob("*.py"))
             if ".peer-venv" not in f.parts]       # bench/.peer-venv: the ThingsBoard gateway's own venv
    allowed_by_extras: dict[tuple[str, ...], set[str]] = {}
    for path in files:
        where, extras = extras_of(path)
        if tuple(extras) not in allowed_by_extras:
            allowed_by_extras[tuple(extras)] = declared(extras)
        allowed = allowed_by_extras[tuple(extras)]
        for line, name in imports(path):
            if name in sys.stdlib_module_names or name in OURS or name in ALLOWED or is_local(path, name):
                continue
            dists = {canonicalize_name(d) for d in distributions.get(name, [])}
            if dists & allowed:
                continue
            found = ", ".join(sorted(dists)) or "no installed distribution provides it"
            expected = (f"nor in {' '.join(f'[{e}]' for e in extras)}, the extras {where}" if extras
                        else f"(the only ones {where})")
            problems.append(f"{path.relative_to(REPO)}:{line}: import {name} ({found}) is declared neither in "
                            f"pyproject.toml's base dependencies {expected}")
    return problems


def test_every_third_party_import_is_declared_in_the_extra_its_part_is_installed_with():
    problems = undeclared_imports()
    assert not problems, "\n".join(problems)


def test_the_check_names_the_file_the_import_and_the_extra(monkeypatch):
    """The test above can fail: numpy only through pvlib in the simulators extra is caught."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    project["project"]["optional-dependencies"]["simulators"] = [
        r for r in project["project"]["optional-dependencies"]["simulators"]
        if canonicalize_name(Requirement(r).name) != "numpy"]
    monkeypatch.setitem(globals(), "PYPROJECT", project)
    problems = undeclared_imports()
    assert any(p.startswith("simulators/greencity/model.py:") and "import numpy" in p and "[simulators]" in p
               for p in problems), problems
    assert all("[simulators]" in p for p in problems), problems
