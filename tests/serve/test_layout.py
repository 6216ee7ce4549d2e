"""The rooms of serve/ keep to their roles: the engine runs without a web framework, and no protocol (v1,
v2, the page) reaches into another; what they share lives in serve/http/ or the engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SERVE = Path(__file__).resolve().parents[2] / "serve"
ROOMS = ("engine", "http", "v1", "v2", "page", "cli")
# which rooms each room may import (besides itself and the top-level config, errors and metrics)
ALLOWED = {
    "engine": set(),
    "http": {"engine"},
    "v1": {"engine", "http"},
    "v2": {"engine", "http"},
    "page": {"engine", "http"},
    "cli": {"engine"},
}

ENGINE_WITHOUT_WEB = """
import pkgutil, sys
WEB = ("fastapi", "starlette", "pydantic", "pydantic_settings", "uvicorn")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in WEB:
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Block())
import lnrnn.serve.engine as engine
names = [m.name for m in pkgutil.iter_modules(engine.__path__, "lnrnn.serve.engine.")]
for name in names:
    __import__(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in WEB)
assert not loaded, loaded
print(len(names))
"""


def imported_rooms(path: Path) -> set[str]:
    """The serve/ rooms a module imports, at top level or inside functions."""
    rooms: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["lnrnn", "serve"] and len(parts) > 2:
                rooms.add(parts[2])
    return rooms


def test_the_engine_imports_no_web_framework() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ENGINE_WITHOUT_WEB], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 8  # runtime, batcher, gate, cancel, prefix_cache, sessions, decode, utf8


@pytest.mark.parametrize("room", ROOMS)
def test_a_room_imports_only_the_rooms_below_it(room: str) -> None:
    modules = sorted((SERVE / room).glob("*.py"))
    assert modules, f"serve/{room} is empty"
    for module in modules:
        reached = imported_rooms(module) & set(ROOMS)
        wrong = reached - ALLOWED[room] - {room}
        assert not wrong, f"serve/{room}/{module.name} imports {sorted(wrong)}"


def test_the_import_scan_sees_imports() -> None:
    # guards the test above from passing because it sees nothing: v2's routes use the shared deps
    assert {"http", "v2"} <= imported_rooms(SERVE / "v2" / "routes.py")
    assert "engine" in imported_rooms(SERVE / "v1" / "sessions.py")
