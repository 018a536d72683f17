"""The content of a COPY/ADD here-document source, expanded as a POSIX shell does."""

from __future__ import annotations

from collections.abc import Mapping

from ocibuild.errors import OcibuildError
from ocibuild.frontend.dockerfile.shell import ShellLex


def expand_heredoc(text: str, lex: ShellLex, env: Mapping[str, str]) -> str:
    """POSIX here-document expansion: parameters ($X, ${X...}) are expanded, quotes stay
    as written, and a backslash only escapes $, ` and itself (and joins lines)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "$`\\\n":
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        if ch == "$" and i + 1 < n:
            end = _parameter_end(text, i)
            if end > i + 1:
                out.append(lex.expand_word(text[i:end], env))
                i = end
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _parameter_end(text: str, start: int) -> int:
    """The end of the parameter expression at text[start] == "$" (start + 1: none)."""
    i = start + 1
    if text[i] == "{":
        depth = 0
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise OcibuildError("here-document: missing '}' in a ${...} expansion")
    if text[i].isalpha() or text[i] == "_":
        while i < len(text) and (text[i].isalnum() or text[i] == "_"):
            i += 1
        return i
    if text[i].isdigit():
        return i + 1
    return start + 1
