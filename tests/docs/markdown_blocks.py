"""The fenced code blocks of a Markdown file, with the docs test's marker before each.

A marker is an HTML comment on the line right before a block's opening fence, e.g.
`<!-- docs-test: as=root checkout -->`: whitespace-separated words, each `key` or
`key=value` (`env=NAME=VALUE` keeps everything after the first `=` as its value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SHELL_LANGS = frozenset({"sh", "bash", "shell"})
MARKER = re.compile(r"^\s*<!--\s*docs-test:(.*?)-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")

# key -> what it tells the test (the values each takes are checked where used)
KNOWN_MARKS = {
    "as": "who runs the block: user (default; the unprivileged ocib-sub) or root",
    "env": "NAME=VALUE set for the block (what the reader is told to set)",
    "checkout": "a copy of this repository is at ./ocibuild",
    "needs-registry": "REGISTRY names a registry the test runs (TLS, trusted)",
    "cwd": "checkout: run inside the copy of the repository instead of the fresh directory",
    "suite": "the command that runs the test suite: checked against .ci/run, not run",
    "ci": "a CI recipe (github or gitlab) whose shell lines the test runs",
}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.doc.name}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELL_LANGS


def parse_marks(text: str, where: str) -> dict[str, str]:
    marks = {}
    for word in text.split():
        key, _, value = word.partition("=")
        if key not in KNOWN_MARKS:
            raise ValueError(f"{where}: unknown docs-test marker {key!r} "
                             f"(known: {', '.join(sorted(KNOWN_MARKS))})")
        marks[key] = value
    return marks


def code_blocks(doc: Path) -> list[Block]:
    """Every fenced block of `doc`, in order. Raises ValueError on an unclosed fence or
    an unknown marker."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        start = i
        marks: dict[str, str] = {}
        if i > 0 and (mm := MARKER.match(lines[i - 1])):
            marks = parse_marks(mm.group(1), f"{doc.name}:{i}")
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{doc.name}:{start + 1}: the fence is never closed")
        blocks.append(Block(doc, start + 1, lang.lower(), "\n".join(body) + "\n", marks))
        i += 1
    return blocks
