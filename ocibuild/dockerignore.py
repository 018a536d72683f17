""".dockerignore: which files of the build context a build may see.

Docker's semantics (moby/patternmatcher), not gitignore's: a pattern is Go's
`filepath.Match` syntax (`*` and `?` never cross `/`, `[a-z]` classes, `\\`
escapes) plus `**` for any number of directories; it is anchored at the context
root (`*.pyc` matches `a.pyc` but not `sub/a.pyc`); a pattern that matches a
directory matches everything under it; `!pattern` re-includes, and the last
matching pattern wins. Patterns are cleaned (`./a` -> `a`, `a/` -> `a`,
leading `/` dropped); lines starting with `#` are comments.

Public API:

- `read_patterns(text) -> list[str]`: the patterns of an ignore file.
- `IgnoreMatcher(patterns)`: `.matches(path) -> bool` for a slash-separated
  path relative to the context; `.has_exclusions` (any `!` pattern).
- `find_ignore_file(context_dir, dockerfile=None) -> Path | None`:
  `NAME.dockerignore` next to a Dockerfile called NAME wins over the
  context's `.dockerignore`, as in BuildKit.
- `load_matcher(context_dir, dockerfile=None) -> IgnoreMatcher`.
- `go_clean(path) -> str`: Go's `filepath.Clean`.

Bad patterns raise `DockerignoreError`.
"""

from __future__ import annotations

import re
from pathlib import Path

from ocibuild.errors import OcibuildError

_BOM = "\ufeff"
_REGEX_ESCAPE = frozenset(".+()|{}$")
_GO_SPACE = "\t\n\v\f\r \x85\xa0"


class DockerignoreError(OcibuildError):
    """A malformed .dockerignore pattern."""


def go_clean(path: str) -> str:
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(seg)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def read_patterns(text: str) -> list[str]:
    patterns = []
    for number, line in enumerate(text.split("\n")):
        if number == 0 and line.startswith(_BOM):
            line = line[1:]
        if line.startswith("#"):
            continue
        pattern = line.strip(_GO_SPACE)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip(_GO_SPACE)
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _check_match_syntax(pattern: str) -> None:
    """Reject what Go's filepath.Match rejects (bad classes, trailing escape)."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise DockerignoreError(f"syntax error in pattern {pattern!r}: trailing \\")
            i += 2
            continue
        if ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            first = True
            while True:
                if i >= n:
                    raise DockerignoreError(f"syntax error in pattern {pattern!r}: unclosed [")
                if pattern[i] == "]" and not first:
                    i += 1
                    break
                first = False
                i = _class_char(pattern, i)
                if i < n and pattern[i] == "-":
                    i = _class_char(pattern, i + 1)
            continue
        i += 1


def _class_char(pattern: str, i: int) -> int:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise DockerignoreError(f"syntax error in pattern {pattern!r}: bad character class")
    if pattern[i] == "\\":
        if i + 1 >= n:
            raise DockerignoreError(f"syntax error in pattern {pattern!r}: trailing \\")
        return i + 2
    return i + 1


class _Pattern:
    __slots__ = ("text", "exclusion", "kind", "regex")

    def __init__(self, text: str, exclusion: bool) -> None:
        self.text = text
        self.exclusion = exclusion
        self.kind, self.regex = _compile(text)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    out = ["^"]
    kind = "exact"
    i, n = 0, len(pattern)
    index = 0
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regex"
                else:
                    out.append("(.*/)?")
                    kind = "regex"
                if index == 0:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch in _REGEX_ESCAPE:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
                kind = "regex"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regex"
        else:
            out.append(ch)
        index += 1
    if kind != "regex":
        return kind, None
    out.append("$")
    try:
        return kind, re.compile("".join(out))
    except re.error as exc:
        raise DockerignoreError(f"bad pattern {pattern!r}: {exc}") from None


class IgnoreMatcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        self.has_exclusions = False
        for raw in patterns:
            text = raw.strip(_GO_SPACE)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise DockerignoreError('illegal exclusion pattern: "!"')
                text = text[1:]
                self.has_exclusions = True
            _check_match_syntax(text)
            self.patterns.append(_Pattern(text, exclusion))

    def matches(self, path: str) -> bool:
        """Is `path` (relative to the context, `/`-separated) ignored?"""
        path = go_clean(path)
        if path == ".":
            return False
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parents = parent.split("/") if parent != "." else []
        prefixes = ["/".join(parents[: i + 1]) for i in range(len(parents))]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path) or any(pattern.match(p) for p in prefixes)
            if hit:
                matched = not pattern.exclusion
        return matched


def find_ignore_file(context_dir: Path, dockerfile: Path | None = None) -> Path | None:
    if dockerfile is not None:
        specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if specific.is_file():
            return specific
    default = context_dir / ".dockerignore"
    return default if default.is_file() else None


def load_matcher(context_dir: Path, dockerfile: Path | None = None) -> IgnoreMatcher:
    found = find_ignore_file(context_dir, dockerfile)
    if found is None:
        return IgnoreMatcher([])
    text = found.read_text(encoding="utf-8", errors="surrogateescape")
    return IgnoreMatcher(read_patterns(text))
