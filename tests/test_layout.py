"""The hallway between the rooms: no import cycle, one module per third-party boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import voicesub_stream

PACKAGE = Path(voicesub_stream.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Every module of the package that ``module`` imports anywhere in its text: at the top,
    inside functions, or under ``TYPE_CHECKING``."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out |= {target, *(f"{target}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def _room(module: str) -> str:
    """The package's top-level module or subpackage that ``module`` belongs to."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_the_package_rooms() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {_room(t) for t in _imports(module, path) if t in modules}
        graph.setdefault(_room(module), set()).update(targets - {_room(module)})

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(room for room in graph if reaches(room, room, {room}))
    assert cycles == [], f"rooms on an import cycle: {cycles}"


def test_faster_whisper_is_imported_in_one_module() -> None:
    importers = set()
    for module, path in _modules().items():
        if any(t == "faster_whisper" or t.startswith("faster_whisper.")
               for t in _imports(module, path)):
            importers.add(module)
    # The benchmarks run plain faster-whisper as their baseline; nothing else may.
    runtime = {m for m in importers if not m.startswith("voicesub_stream.bench.")}
    assert runtime == {"voicesub_stream.models._whisper"}


def test_the_language_codes_are_whispers() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from voicesub_stream._config import WHISPER_LANGUAGES

    assert frozenset(_LANGUAGE_CODES) == WHISPER_LANGUAGES


def test_every_type_ignore_says_why() -> None:
    ignores = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if "type: ignore" in line:
                reason = lines[i - 1].strip() if i else ""
                ignores.append((path.name, i + 1, reason.startswith("#")))
    assert len(ignores) <= 5, ignores
    assert all(has_reason for _, _, has_reason in ignores), ignores
