"""docs/operations.md explains every message a technician can meet about a gate's health.

The messages are read from the source with ``ast``, not from a list kept by hand, so a new
message that is not in the guide fails here. From each message the test takes its stable
part: the text before the first ``{...}`` of an f-string, or, when the message starts with a
variable (``f"{self.name}: no such device"``), its longest constant piece. Messages that are
wholly variable (``str(err)``) or empty (``HealthCell.set(HealthState.OK, "")``) are not
counted: the messages they pass on are collected where they are raised.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gate.validator import Reason

ROOT = Path(__file__).resolve().parent.parent
GUIDE_PATH = ROOT / "docs" / "operations.md"
#: pieces shorter than this say nothing by themselves (": ", " s", "key")
MIN_FRAGMENT = 4
#: a start shorter than this ("gpio: ") names a device, not the problem: take the longest piece
MIN_START = 8
#: test doubles shipped beside the drivers: never on a real gate
FAKES = {"drivers/camera/fake.py", "drivers/serial/fake.py", "drivers/nfc/sim.py"}
#: exceptions whose message becomes a reader's health reason or stops gated from starting
DRIVER_ERRORS = {"DriverInitError", "DriverOperationError", "DriverUnavailable", "_fail"}
#: the gate's side of sync (not the collector, not the office tools)
SYNC_FILES = {"sync/agent.py", "sync/client.py", "sync/identity.py", "sync/signing.py"}
#: exceptions and helpers whose message ends up in sync.json's last_error
SYNC_ERRORS = {
    "KeyFileError",
    "SyncError",
    "CollectorRefused",
    "CollectorUnreachable",
    "DocumentRefused",
    "refused",
    "_failed",
    "RequestRejected",
}
#: why a trust bundle or revocation list is refused (gatectl import, sync, status WARNING)
DOCUMENT_ERRORS = {"SignedDocumentError", "RollbackError"}


def normalised(text: str) -> str:
    return " ".join(text.split())


def guide() -> str:
    assert GUIDE_PATH.exists(), "docs/operations.md is missing"
    return normalised(GUIDE_PATH.read_text(encoding="utf-8"))


def _strip(piece: str) -> str:
    return piece.strip().strip(":;,()").strip()


def fragment(node: ast.expr) -> str | None:
    """The stable part of a message expression, or None when it has none worth checking."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = _strip(node.value)
        return text if len(text) >= MIN_FRAGMENT else None
    if not isinstance(node, ast.JoinedStr):
        return None
    pieces: list[str] = []
    current = ""
    for value in node.values:
        if isinstance(value, ast.Constant):
            current += str(value.value)
        else:
            pieces.append(current)
            current = ""
    pieces.append(current)
    start = _strip(pieces[0])
    if len(start) >= MIN_START:
        return start
    longest = max((_strip(piece) for piece in pieces), key=len)
    return longest if len(longest) >= MIN_FRAGMENT else None


def messages(node: ast.expr) -> Iterator[ast.expr]:
    """The message expressions an argument can evaluate to (both sides of ``a if c else b``)."""
    if isinstance(node, ast.IfExp):
        yield from messages(node.body)
        yield from messages(node.orelse)
    else:
        yield node


def source_files(*folders: str) -> Iterator[tuple[str, ast.Module]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name not in FAKES:
                yield name, ast.parse(path.read_text(encoding="utf-8"), filename=name)


def called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def calls(
    tree: ast.AST, wanted: Callable[[ast.Call], bool], argument: int = 0
) -> Iterator[tuple[int, str]]:
    """(line, fragment) of argument ``argument`` of every call ``wanted`` accepts."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and wanted(node) and len(node.args) > argument:
            for message in messages(node.args[argument]):
                text = fragment(message)
                if text is not None:
                    yield node.lineno, text


def is_health_set(call: ast.Call) -> bool:
    """``cell.set(HealthState.X, reason)``: HealthCell.set, whatever the cell is called."""
    return (
        called_name(call) == "set"
        and bool(call.args)
        and isinstance(call.args[0], ast.Attribute)
        and isinstance(call.args[0].value, ast.Name)
        and call.args[0].value.id == "HealthState"
    )


def named(names: set[str]) -> Callable[[ast.Call], bool]:
    return lambda call: called_name(call) in names


def function(tree: ast.Module, predicate: Callable[[str], bool]) -> Iterator[ast.FunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and predicate(node.name):
            yield node


def appended(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """What a function adds to its list of lines or problems (``x.append(...)``)."""
    yield from calls(tree, named({"append"}))


def returned_texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Strings in ``return`` statements (``return False, "not synchronised ..."``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None:
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for value in values:
                text = fragment(value)
                if text is not None:
                    yield node.lineno, text


def assigned_to(tree: ast.AST, names: set[str]) -> Iterator[tuple[int, str]]:
    """Strings assigned to a variable or attribute called one of ``names``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                target_name = getattr(target, "id", None) or getattr(target, "attr", None)
                if target_name in names:
                    for message in messages(node.value):
                        text = fragment(message)
                        if text is not None:
                            yield node.lineno, text


def dict_values(tree: ast.AST, variable: str) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and any(getattr(target, "id", None) == variable for target in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            for value in node.value.values:
                text = fragment(value)
                if text is not None:
                    yield node.lineno, text


def collect() -> dict[str, list[tuple[str, int, str]]]:
    """Every message, by kind: {kind: [(file, line, fragment)]}."""
    found: dict[str, list[tuple[str, int, str]]] = {}

    def add(kind: str, name: str, hits: Iterator[tuple[int, str]]) -> None:
        found.setdefault(kind, []).extend((name, line, text) for line, text in hits)

    for name, tree in source_files("drivers", "gate", "sync"):
        add("health reason (HealthCell.set)", name, calls(tree, is_health_set, 1))
        if name.startswith("drivers/"):
            add("driver error (becomes a health reason)", name, calls(tree, named(DRIVER_ERRORS)))
            add("serial port hint", name, dict_values(tree, "_OPEN_HINTS"))
        if name in SYNC_FILES:
            add("sync error (sync last_error)", name, calls(tree, named(SYNC_ERRORS)))
            add("sync error (sync last_error)", name, assigned_to(tree, {"message"}))
        if name == "gate/store.py":
            add("store error (store health reason)", name, calls(tree, named({"StoreError"})))
        if name in ("gate/signed.py", "gate/revocations.py", "gate/trust.py"):
            add("document refused", name, calls(tree, named(DOCUMENT_ERRORS)))
            add("trust bundle warning (status)", name, assigned_to(tree, {"error"}))
        if name == "gate/clock.py":
            add("clock", name, returned_texts(tree))
            add("clock", name, appended(tree))
        if name == "gate/state.py":
            for node in function(tree, lambda n: "problem" in n):
                add("gatectl status problem", name, appended(node))
        if name == "gate/cli.py":
            for node in function(tree, lambda n: n == "status" or n.startswith("_status")):
                add("gatectl status line", name, appended(node))
    return found


FOUND = collect()
CASES = [
    pytest.param(text, id=f"{kind}: {text[:40]}")
    for kind, hits in FOUND.items()
    for text in sorted({text for _, _, text in hits})
]


def test_the_source_has_the_messages_this_test_looks_for():
    # A refactoring that hides the messages from the collector would make this test vacuous.
    kinds = {kind for kind, hits in FOUND.items() if hits}
    assert {
        "health reason (HealthCell.set)",
        "driver error (becomes a health reason)",
        "sync error (sync last_error)",
        "document refused",
        "clock",
        "store error (store health reason)",
        "gatectl status line",
        "gatectl status problem",
    } <= kinds, kinds
    health = {text for _, _, text in FOUND["health reason (HealthCell.set)"]}
    assert "emergency input active: relay held open" in health
    assert "disk budget exceeded: database" in health
    assert len(FOUND["driver error (becomes a health reason)"]) >= 20


@pytest.mark.parametrize("text", CASES)
def test_message_is_in_the_operations_guide(text):
    where = [
        f"{name}:{line}" for hits in FOUND.values() for name, line, found in hits if found == text
    ]
    assert normalised(text) in guide(), (
        f"{text!r} ({', '.join(where)}) is not explained in docs/operations.md: add what it "
        "means and the fix"
    )


@pytest.mark.parametrize("reason", [reason.value for reason in Reason] + ["gate_fault"])
def test_every_reject_reason_is_explained(reason):
    assert f"`{reason}`" in guide(), f"reason `{reason}` is not explained in docs/operations.md"


def test_the_fragment_rules():
    def first(source: str) -> str | None:
        return fragment(ast.parse(source, mode="eval").body)

    assert first('f"disk budget exceeded: database {usage:.0f} MB"') == (
        "disk budget exceeded: database"
    )
    assert first('f"{self.label}: {self.source}: no frames for {silent:.1f} s"') == (
        "no frames for"
    )
    assert first('f"gpio: {role} {pin} is the same pin as {other}"') == "is the same pin as"
    assert first('f"{what}: {err}"') is None
    assert first('""') is None
    assert first("str(err)") is None
    assert first('"closed"') == "closed"


def test_a_new_message_missing_from_the_guide_is_found():
    tree = ast.parse(
        "def f(cell):\n"
        "    cell.set(HealthState.FAILED, f'lens fogged up: {percent} % contrast')\n"
        "    cell.set(HealthState.OK, '')\n"
    )
    found = [text for _, text in calls(tree, is_health_set, 1)]
    assert found == ["lens fogged up"]
    assert "lens fogged up" not in guide()
