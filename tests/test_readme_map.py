"""The README's map of the package ("What is here") names every module where it lives."""

from __future__ import annotations

import re

from tests.conftest import ROOT

ROOM = re.compile(r"^  ([a-z_]+(?:/[a-z_]+)*)/\s")
MODULE = re.compile(r"\b([a-z_]+\.py)\b")


def _map() -> dict[str, set[str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## What is here", 1)[1].split("```", 2)[1]
    rooms: dict[str, set[str]] = {}
    room = None
    for line in block.splitlines():
        if line.startswith("churn/") or not line.startswith(" "):
            room = None
            continue
        if found := ROOM.match(line):
            room = found.group(1)
            rooms[room] = set()
        elif not line.startswith("   "):  # a file of churn/ itself (settings.py)
            room = None
        if room is not None:
            rooms[room] |= set(MODULE.findall(line))
    return rooms


def _tree() -> dict[str, set[str]]:
    package = ROOT / "churn"
    return {
        str(folder.relative_to(package)): {
            path.name for path in folder.glob("*.py") if path.name != "__init__.py"
        }
        for folder in sorted(package.rglob("*"))
        if folder.is_dir() and (folder / "__init__.py").is_file()
    }


def test_the_map_names_each_room_and_each_module_in_its_room() -> None:
    drawn, tree = _map(), _tree()
    assert sorted(drawn) == sorted(tree), "rooms in the README's map differ from churn/'s folders"
    for room, modules in tree.items():
        assert drawn[room] == modules, (
            f"churn/{room}/: the map names {sorted(drawn[room] - modules)} that are not there "
            f"and misses {sorted(modules - drawn[room])}"
        )
