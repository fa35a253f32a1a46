"""The committed quorate.v1 stubs are exactly what ``scripts/gen_protos.py`` makes from ``proto/`` now: a changed
proto, a hand edit or another generator version fails here instead of drifting silently."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
COMMITTED = PACKAGE_ROOT / "src" / "quorate" / "_proto"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos", PACKAGE_ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the test extra) regenerates the stubs")
    generator = load_generator()
    generator.generate(tmp_path / "_proto")
    fresh, committed = files(tmp_path / "_proto"), files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "the generated file set differs: run scripts/gen_protos.py"
    drifted = [name for name in fresh if fresh[name] != committed[name]]
    assert not drifted, f"stubs differ from proto/ (run clients/python/scripts/gen_protos.py): {drifted}"


def test_service_stubs_import_their_messages_package_relative() -> None:
    for path in COMMITTED.rglob("*_grpc.py"):
        text = path.read_text(encoding="utf-8")
        assert "from quorate.v1 import" not in text, path
        assert "from . import" in text, path
