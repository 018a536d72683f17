"""The shell a CI recipe in the docs runs: a GitHub Actions workflow's `run:` steps, a
GitLab CI job's `script:` lines, and the variables the recipe declares.

Only the YAML forms the recipes use are read (block mappings, `run: |` block scalars,
`- item` lists of plain scalars); anything else is an error, not a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY = re.compile(r"^(\s*)(- )?([A-Za-z_][\w-]*):(?:\s+(.*))?$")


@dataclass(frozen=True)
class Step:
    name: str
    script: str
    as_root: bool  # every line starts with `sudo ` (the runner's password-less sudo)


@dataclass(frozen=True)
class Recipe:
    variables: tuple[str, ...]  # names under every `env:` / `variables:` mapping
    steps: tuple[Step, ...]
    uses: tuple[str, ...]  # GitHub actions the recipe uses (not run by the test)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _plain(value: str, where: str) -> str:
    if value[:1] in "\"'|>&*!%@`{[":
        raise ValueError(f"{where}: {value!r}: write it as a plain scalar or a `|` block")
    return value


def _mapping_keys(lines: list[str], i: int) -> tuple[list[str], int]:
    """Keys of the block mapping under line i (a `name:` line with no value)."""
    base = _indent(lines[i])
    keys, j = [], i + 1
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
        m = _KEY.match(lines[j])
        if m and lines[j].strip():
            keys.append(m.group(3))
        j += 1
    return keys, j


def _block_scalar(lines: list[str], i: int) -> tuple[str, int]:
    """The text of a `key: |` block scalar starting after line i."""
    base = _indent(lines[i]) + (2 if lines[i].lstrip().startswith("- ") else 0)
    body, j = [], i + 1
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
        body.append(lines[j])
        j += 1
    while body and not body[-1].strip():
        body.pop()
    cut = min(_indent(line) for line in body if line.strip())
    return "\n".join(line[cut:] for line in body) + "\n", j


def _sudo_split(name: str, script: str, where: str) -> Step:
    lines = [line for line in script.splitlines() if line.strip()]
    sudo = [line.startswith("sudo ") for line in lines]
    if any(sudo) and not all(sudo):
        raise ValueError(f"{where}: step {name!r} mixes sudo and plain lines; the test runs "
                         "a step either as root (all sudo) or as the user")
    if all(sudo):
        script = "\n".join(line.removeprefix("sudo ") for line in lines) + "\n"
    return Step(name, script, all(sudo))


def github_recipe(text: str, where: str) -> Recipe:
    lines = text.splitlines()
    variables: list[str] = []
    steps: list[Step] = []
    uses: list[str] = []
    name = ""
    i = 0
    while i < len(lines):
        m = _KEY.match(lines[i])
        if not m:
            i += 1
            continue
        dash, key, value = m.group(2), m.group(3), (m.group(4) or "").strip()
        if dash:
            name = ""
        if key == "env" and not value:
            keys, i = _mapping_keys(lines, i)
            variables += keys
            continue
        if key == "name":
            name = value
        elif key == "uses":
            uses.append(value)
        elif key == "run":
            if value == "|":
                script, i = _block_scalar(lines, i)
                steps.append(_sudo_split(name, script, where))
                continue
            steps.append(_sudo_split(name, _plain(value, where) + "\n", where))
        i += 1
    return Recipe(tuple(variables), tuple(steps), tuple(uses))


def gitlab_recipe(text: str, where: str) -> Recipe:
    """One job; its `script:` lines run in one shell, as GitLab runs them."""
    lines = text.splitlines()
    variables: list[str] = []
    script: list[str] = []
    i = 0
    while i < len(lines):
        m = _KEY.match(lines[i])
        if m and m.group(3) == "variables" and not m.group(4):
            keys, i = _mapping_keys(lines, i)
            variables += keys
            continue
        if m and m.group(3) in ("before_script", "script") and not m.group(4):
            base = _indent(lines[i])
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                item = lines[i].strip()
                if item:
                    if not item.startswith("- "):
                        raise ValueError(f"{where}: script lines must be `- COMMAND` items")
                    script.append(_plain(item[2:], where))
                i += 1
            continue
        i += 1
    # the job runs as root in its container
    return Recipe(tuple(variables), (Step("script", "\n".join(script) + "\n", True),), ())
