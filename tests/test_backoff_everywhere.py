"""Every reconnect and retry loop of the product code waits hinode.backoff's delays, not its own.

A hand-rolled back-off (``delay = min(delay * 2, 15)``, ``initial * 2 ** attempts``) has no jitter,
so a crowd of clients that lost the same broker or webhook comes back in lockstep; paho's own
reconnect loop doubles without jitter too unless ``PahoReconnect`` (or the cloud's
``JitteredReconnect``) drives it. This scans the code of edge_agent/, cloud/, simulators/ and hinode/
(the syntax tree, so comments and docstrings do not count) for:

* ``doubling``: ``x * 2`` / ``x *= 2`` (a growth factor: a constant from 1.5 to 4, not a unit
  conversion like ``delay_s * 1000``) where a name in it speaks of a delay;
* ``power``: ``2 ** n`` where ``n`` counts attempts, or anything in it speaks of a delay;
* ``reconnect_delay_set``: setting paho's delays by hand;
* ``paho_loop``: ``loop_start()`` / ``loop_forever()`` in a module that never uses a jittered reconnect.

A justified exception goes in ALLOWED with its reason; an entry that no longer matches anything fails
too, so the list stays true.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("edge_agent", "cloud", "simulators", "hinode")
HELPER = Path("hinode/backoff.py")

DELAY_NAME = re.compile(r"delay|backoff|back_off|retry|retries|wait|sleep|pause|cooldown", re.I)
ATTEMPT_NAME = re.compile(r"attempt|retr|tries|tried|fail", re.I)
PAHO_LOOPS = {"loop_start", "loop_forever"}
JITTERED_RECONNECTS = {"PahoReconnect", "JitteredReconnect"}

# (path, function or class qualname -- a class covers its methods, rule) -> why it may stay.
ALLOWED: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    qualname: str
    rule: str
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.qualname or 'module'}): {self.rule}: {self.code}"


def _names(node: ast.AST) -> list[str]:
    return [n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
            if isinstance(n, (ast.Name, ast.Attribute))]


def _growth_factor(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool) and 1.5 <= node.value <= 4)


def _speaks_of(pattern: re.Pattern, *nodes: ast.AST) -> bool:
    return any(pattern.search(name) for node in nodes for name in _names(node))


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, source: str):
        self.path, self.lines = path, source.splitlines()
        self.scope: list[str] = []
        self.findings: list[Finding] = []
        self.paho_loops: list[Finding] = []
        self.jittered = False

    def _finding(self, node: ast.AST, rule: str) -> Finding:
        code = self.lines[node.lineno - 1].strip() if node.lineno <= len(self.lines) else ""
        return Finding(self.path, node.lineno, ".".join(self.scope), rule, code)

    def _add(self, node: ast.AST, rule: str) -> None:
        self.findings.append(self._finding(node, rule))

    def _scoped(self, node) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Mult) and (_growth_factor(node.left) or _growth_factor(node.right)) \
                and _speaks_of(DELAY_NAME, node):
            self._add(node, "doubling")
        elif isinstance(node.op, ast.Pow) and (_speaks_of(ATTEMPT_NAME, node.right) or _speaks_of(DELAY_NAME, node)):
            self._add(node, "power")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.op, ast.Mult) and _growth_factor(node.value) and _speaks_of(DELAY_NAME, node.target):
            self._add(node, "doubling")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "reconnect_delay_set":
            self._add(node, "reconnect_delay_set")
        elif name in PAHO_LOOPS:
            self.paho_loops.append(self._finding(node, "paho_loop"))
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self.jittered |= node.id in JITTERED_RECONNECTS

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.jittered |= node.attr in JITTERED_RECONNECTS
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.jittered |= any(alias.name in JITTERED_RECONNECTS for alias in node.names)


def scan_source(path: str, source: str) -> list[Finding]:
    scanner = _Scanner(path, source)
    scanner.visit(ast.parse(source, filename=path))
    if not scanner.jittered:
        scanner.findings += scanner.paho_loops
    return sorted(scanner.findings, key=lambda f: f.line)


def product_files() -> list[Path]:
    return [file for root in SCANNED for file in sorted((REPO / root).rglob("*.py"))
            if file.relative_to(REPO) != HELPER]


def scan_repo() -> list[Finding]:
    return [finding for file in product_files()
            for finding in scan_source(file.relative_to(REPO).as_posix(), file.read_text(encoding="utf-8"))]


def _allowed_by(finding: Finding) -> tuple[str, str, str] | None:
    for key in ALLOWED:
        path, qualname, rule = key
        if (finding.path, finding.rule) == (path, rule) and \
                (finding.qualname == qualname or finding.qualname.startswith(qualname + ".")):
            return key
    return None


def test_no_reconnect_or_retry_loop_rolls_its_own_back_off():
    findings = scan_repo()
    hand_rolled = [f for f in findings if _allowed_by(f) is None]
    assert not hand_rolled, (
        "hand-rolled back-off (no jitter: a crowd retries in lockstep); use hinode.backoff.Backoff "
        "(next()/reset(), or delay_for(n) when the count is stored elsewhere) or PahoReconnect for paho's "
        "own loop, or add a reasoned entry to ALLOWED in tests/test_backoff_everywhere.py:\n"
        + "\n".join(map(str, hand_rolled)))
    used = {_allowed_by(f) for f in findings}
    stale = [key for key in ALLOWED if key not in used]
    assert not stale, f"ALLOWED entries that match nothing any more, remove them: {stale}"


SNIPPETS = {
    "doubling": """
        class Link:
            def _retry_later(self):
                self.next_attempt = time.monotonic() + self.backoff_s
                self.backoff_s = min(self.backoff_s * 2, 15.0)
        """,
    "power": """
        def retry_delay_s(self, attempts):
            return min(self.initial_s * 2 ** max(attempts - 1, 0), self.max_s)
        """,
    "reconnect_delay_set": """
        client.reconnect_delay_set(min_delay=1, max_delay=120)
        """,
    "paho_loop": """
        def start(self):
            self.client.connect_async(self.host, self.port, keepalive=30)
            self.client.loop_start()
        """,
}


def test_the_scan_finds_each_pattern_and_names_file_and_line():
    for rule, snippet in SNIPPETS.items():
        findings = scan_source(f"example/{rule}.py", textwrap.dedent(snippet))
        assert [f.rule for f in findings] == [rule], (rule, findings)
        assert str(findings[0]).startswith(f"example/{rule}.py:{findings[0].line} ")
    delay_grows = scan_source("x.py", "def f(delay):\n    delay *= 2\n")
    assert [(f.rule, f.line, f.qualname) for f in delay_grows] == [("doubling", 2, "f")]


def test_the_scan_leaves_alone_what_is_no_back_off():
    harmless = """
        from hinode.backoff import PahoReconnect
        LAST_ID = 2**63 - 1
        def f(self, timeout_s):
            self.stride *= 2
            client.connect(host, keepalive=max(10, int(timeout_s) * 2))
            next_ms = at_ms + int(retry.delay_for(attempts) * 1000)
            reconnect = PahoReconnect(client, 1.0, 120.0)
            client.loop_start()
            return apparent ** 2 - power ** 2, "delay * 2"   # a delay * 2 in a comment
        """
    assert scan_source("harmless.py", textwrap.dedent(harmless)) == []
