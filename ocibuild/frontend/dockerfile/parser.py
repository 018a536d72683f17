"""Dockerfile text -> AST: one `Node` per instruction, with line range and column.

The grammar follows BuildKit's `frontend/dockerfile/parser` (its conformance
data must dump byte-identically, see `dump.py`): parser directives at the top
(`# syntax=`, `# escape=`, `# check=`), `#` comments, line continuations with
the escape character (empty and comment lines inside a continued instruction
are skipped), heredocs for RUN/COPY/ADD (also under ONBUILD), JSON (exec) form
versus shell form, and `--flags` before the arguments. Arguments are not
expanded here: that is `shell`'s job, done later by the converter.

Public API:

- `parse(text, filename="Dockerfile") -> AST` (raises `DockerfileError`).
- `parse_heredoc(word) -> Heredoc | None`: is this word a heredoc opener
  (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`)? The content is not filled in.
- `chomp_heredoc(content) -> str`: strip leading tabs of every line (`<<-`).
- `AST`, `Node`, `Heredoc`, `Directive`: frozen dataclasses.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ocibuild.deferred import deferred_dataclass
from ocibuild.frontend.dockerfile.errors import DockerfileError, ShellExpansionError
from ocibuild.frontend.dockerfile.shell import ShellLex, go_fields, go_is_space

DEFAULT_ESCAPE = "\\"
DIRECTIVE_NAMES = ("syntax", "escape", "check")

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_CONTINUATION = {
    "\\": re.compile(r"([^\\])\\[ \t]*\Z|^\\[ \t]*\Z"),
    "`": re.compile(r"([^`])`[ \t]*\Z|^`[ \t]*\Z"),
}
_HEREDOC_COMMANDS = frozenset({"add", "copy", "run"})
_BOM = "\ufeff"


@functools.cache
def _leading_tabs() -> re.Pattern[str]:
    return re.compile(r"^\t+", re.MULTILINE)


@deferred_dataclass(frozen=True)  # made on first use: most Dockerfiles have none
class Heredoc:
    """A here-document: `name` is its delimiter word, `content` its body."""

    name: str
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False
    content: str = ""


@deferred_dataclass(frozen=True)
class Directive:
    """A parser directive (`# syntax=`, `# escape=`, `# check=`) and its line."""
    name: str
    value: str
    line: int


@dataclass(frozen=True)
class Node:
    """One instruction as written (arguments unexpanded)."""

    command: str
    args: tuple[str, ...]
    flags: tuple[str, ...] = ()
    json: bool = False
    original: str = ""
    start_line: int = 0
    end_line: int = 0
    column: int = 1
    heredocs: tuple[Heredoc, ...] = ()
    sub: Node | None = None  # the instruction ONBUILD wraps
    comments: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The instruction in lower case (`run`, `copy`, ...)."""
        return self.command.lower()


@dataclass(frozen=True)
class AST:
    """A Dockerfile split into instruction nodes, with its directives and escape character."""
    filename: str
    nodes: tuple[Node, ...]
    directives: tuple[Directive, ...] = ()
    escape: str = DEFAULT_ESCAPE
    lines: tuple[str, ...] = field(default=(), repr=False)
    warnings: tuple[str, ...] = ()

    def directive(self, name: str) -> str | None:
        for d in self.directives:
            if d.name == name:
                return d.value
        return None

    def source_line(self, line: int) -> str | None:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else None

    def error(
        self, message: str, line: int, column: int = 1, end_line: int | None = None
    ) -> DockerfileError:
        return DockerfileError(
            message,
            filename=self.filename,
            line=line,
            column=column,
            end_line=end_line,
            source_line=self.source_line(line),
        )


class _NotStringArray(Exception):
    pass


def _go_trim_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and go_is_space(text[start]):
        start += 1
    while end > start and go_is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def _go_trim_left_space(text: str) -> str:
    start = 0
    while start < len(text) and go_is_space(text[start]):
        start += 1
    return text[start:]


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _go_trim_left_space(line).startswith("#")


class _DirectiveParser:
    """Parser directives: only in the leading run of `#` comment lines."""

    def __init__(self) -> None:
        self.line = 0
        self.done = False
        self.seen: set[str] = set()

    def parse_line(self, line: str) -> Directive | None:
        self.line += 1
        if self.done:
            return None
        if not line.startswith("#"):
            self.done = True
            return None
        m = _DIRECTIVE.match(_go_trim_left_space(line[1:]))
        if m is None or m.group(1).lower() not in DIRECTIVE_NAMES:
            self.done = True
            return None
        name = m.group(1).lower()
        if name in self.seen:
            raise ValueError(f"only one {name} parser directive can be used")
        self.seen.add(name)
        return Directive(name, m.group(2), self.line)


def _split_lines(text: str) -> list[str]:
    """Lines with their endings kept, split on \\n only (like BuildKit's scanner)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def parse(text: str | bytes, filename: str = "Dockerfile") -> AST:
    """Parse a Dockerfile. Raises DockerfileError (never anything else)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="surrogateescape")
    return _Parser(text, filename).run()


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.lines = _split_lines(text)
        if self.lines and self.lines[0].startswith(_BOM):
            self.lines[0] = self.lines[0][1:]
        self.escape = DEFAULT_ESCAPE
        self.continuation = _CONTINUATION[DEFAULT_ESCAPE]
        self.directive_parser = _DirectiveParser()
        self.directives: list[Directive] = []
        self.warnings: list[str] = []

    def error(
        self, message: str, line: int, column: int = 1, end: int | None = None
    ) -> DockerfileError:
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return DockerfileError(
            message, filename=self.filename, line=line, column=column, end_line=end,
            source_line=source,
        )

    def _process_line(self, raw: str, strip_left: bool, lineno: int) -> str:
        token = _trim_newline(raw)
        if strip_left:
            token = _go_trim_left_space(token)
        try:
            directive = self.directive_parser.parse_line(token)
        except ValueError as exc:
            raise self.error(str(exc), lineno) from None
        if directive is not None:
            if directive.name == "escape":
                if directive.value not in ("\\", "`"):
                    raise self.error(
                        f"invalid escape token '{directive.value}' does not match ` or \\",
                        lineno,
                    )
                self.escape = directive.value
                self.continuation = _CONTINUATION[directive.value]
            self.directives.append(directive)
        return "" if _is_comment(token) else token

    def _trim_continuation(self, line: str) -> tuple[str, bool]:
        m = self.continuation.search(line)
        if m is None:
            return line, True
        return line[: m.start()] + (m.group(1) or "") + line[m.end() :], False

    def run(self) -> AST:
        nodes: list[Node] = []
        comments: list[str] = []
        lines = self.lines
        i, total = 0, len(lines)
        while i < total:
            raw = lines[i]
            if _is_comment(raw):
                comment = _go_trim_space(_go_trim_left_space(raw)[1:])
                if comment:
                    comments.append(comment)
                else:
                    comments = []
            before = len(self.directives)
            token = self._process_line(raw, True, i + 1)
            if len(self.directives) > before and comments:
                comments.pop()
            i += 1
            start_line = i
            column = len(raw) - len(_go_trim_left_space(raw)) + 1
            token, end_of_line = self._trim_continuation(token)
            if end_of_line and not token:
                continue
            buf = [token]
            empty_continuation = False
            while not end_of_line and i < total:
                raw = lines[i]
                token = self._process_line(raw, False, i + 1)
                i += 1
                if _is_comment(raw):
                    continue
                if not _go_trim_left_space(_trim_newline(token)):
                    empty_continuation = True
                    continue
                token, end_of_line = self._trim_continuation(token)
                buf.append(token)
            line = "".join(buf)
            if empty_continuation:
                self.warnings.append(f"Empty continuation line found in: {line}")
            try:
                parsed = _node_from_line(line, self.escape, tuple(comments))
            except ValueError as exc:
                raise self.error(str(exc), start_line, column, i) from None
            heredoc_target = parsed.sub if parsed.sub is not None else parsed
            docs: list[Heredoc] = []
            if (
                heredoc_target.command.lower() in _HEREDOC_COMMANDS
                and not heredoc_target.json
                and "<<" in line
            ):
                try:
                    openers = heredocs_from_line(line)
                except ValueError as exc:
                    raise self.error(str(exc), start_line, column, i) from None
                for doc in openers:
                    body: list[str] = []
                    terminated = False
                    while i < total:
                        raw = lines[i]
                        i += 1
                        candidate = _trim_newline(raw)
                        if doc.chomp:
                            candidate = candidate.lstrip("\t")
                        if candidate == doc.name:
                            terminated = True
                            break
                        body.append(raw)
                    if not terminated:
                        raise self.error("unterminated heredoc", start_line, column, i)
                    docs.append(replace(doc, content="".join(body)))
            place = {"start_line": start_line, "end_line": i, "column": column,
                     "heredocs": tuple(docs)}
            sub = None if parsed.sub is None else replace(parsed.sub, **place)
            node = replace(parsed, sub=sub, **place)
            nodes.append(node)
            comments = []
        if not nodes:
            raise DockerfileError("file with no instructions", filename=self.filename)
        return AST(
            filename=self.filename,
            nodes=tuple(nodes),
            directives=tuple(self.directives),
            escape=self.escape,
            lines=tuple(self.lines),
            warnings=tuple(self.warnings),
        )


# -- one logical line -> Node ------------------------------------------------


def _node_from_line(line: str, escape: str, comments: tuple[str, ...]) -> Node:
    command, flags, rest = _split_command(line, escape)
    handler = _DISPATCH.get(command.lower(), _parse_ignore)
    args, is_json, sub = handler(rest, escape)
    return Node(
        command=command,
        args=tuple(args),
        flags=tuple(flags),
        json=is_json,
        original=line,
        sub=sub,
        comments=comments,
    )


def _split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    parts = _WHITESPACE.split(_go_trim_space(line), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, _go_trim_space(rest)


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading `--flag` words; returns the rest of the line and the flags."""
    words, rest = _scan_words(line, escape, flags=True)
    return rest, words


def _scan_words(line: str, escape: str, *, flags: bool) -> tuple[list[str], str]:
    """Words split on whitespace, and the text left after them.

    flags=True (BuildKit's extractBuilderFlags): only the leading `--` words, which
    stop at the first other word or a bare `--`; their quotes and escapes are removed.
    flags=False (its parseWords, for ENV/LABEL/ARG): every word, quotes and escapes
    kept for the expansion to come; an escape inside single quotes is literal.
    """
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    keep = not flags
    buf: list[str] = []
    quote = ""
    blank_ok = False
    n = len(line)
    pos = 0
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if go_is_space(ch):
                pos += 1
                continue
            if flags and (ch != "-" or pos + 1 == n or line[pos + 1] != "-"):
                return words, line[pos:]
            phase = in_word
        if pos == n:
            word = "".join(buf)
            if (blank_ok or word) and not (flags and word == "--"):
                words.append(word)
            break
        if phase == in_word:
            if go_is_space(ch):
                word = "".join(buf)
                phase = in_spaces
                if flags and word == "--":
                    return words, line[pos:]
                if blank_ok or word:
                    words.append(word)
                buf.clear()
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                if keep:
                    buf.append(ch)
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                if keep:
                    buf.append(ch)
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            if keep:
                buf.append(ch)
            pos += 1
            continue
        if ch == escape and (flags or quote != "'"):
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            if keep:
                buf.append(ch)
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    return words, ""


_Result = tuple[list[str], bool, "Node | None"]


def _parse_ignore(rest: str, escape: str) -> _Result:
    return [""], False, None


def _parse_sub_command(rest: str, escape: str) -> _Result:
    if not rest:
        return [], False, None
    return [], False, _node_from_line(rest, escape, ())


def _parse_words(rest: str, escape: str) -> list[str]:
    """Words split on whitespace, quotes and escapes kept (for ENV/LABEL/ARG)."""
    if "'" in rest or '"' in rest or escape in rest:
        return _scan_words(rest, escape, flags=False)[0]
    return go_fields(rest)  # the same words, without the character-by-character scan


def _name_val(rest: str, escape: str, key: str) -> list[str]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise ValueError(
                f"Syntax error - can't find = in {_go_quote(word)}. Must be of the form: name=value"
            )
        name, value = word.split("=", 1)
        out += [name, value, "="]
    return out


def _go_quote(text: str) -> str:
    from ocibuild.frontend.dockerfile.gostr import go_quote

    return go_quote(text)


def _parse_env(rest: str, escape: str) -> _Result:
    return _name_val(rest, escape, "ENV"), False, None


def _parse_label(rest: str, escape: str) -> _Result:
    return _name_val(rest, escape, "LABEL"), False, None


def _parse_name_or_name_val(rest: str, escape: str) -> _Result:
    return _parse_words(rest, escape), False, None


def _parse_whitespace_list(rest: str, escape: str) -> _Result:
    if not rest:
        return [], False, None
    return _WHITESPACE.split(rest), False, None


def _parse_string(rest: str, escape: str) -> _Result:
    if not rest:
        return [], False, None
    return [rest], False, None


def _reject_constant(name: str) -> object:
    raise ValueError(name)


def _parse_json(rest: str) -> list[str] | None:
    """The strings of a JSON array, or None if `rest` is not one."""
    rest = _go_trim_left_space(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except RecursionError:
        raise _NotStringArray() from None
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _NotStringArray()
        out.append(_replace_surrogates(item))
    return out


def _replace_surrogates(text: str) -> str:
    if text.isascii():
        return text
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


def _parse_maybe_json(rest: str, escape: str) -> _Result:
    if not rest:
        return [], False, None
    try:
        items = _parse_json(rest)
    except _NotStringArray:
        raise ValueError(_NOT_STRINGS) from None
    if items is not None:
        return items, True, None
    return [rest], False, None


def _parse_maybe_json_to_list(rest: str, escape: str) -> _Result:
    try:
        items = _parse_json(rest)
    except _NotStringArray:
        raise ValueError(_NOT_STRINGS) from None
    if items is not None:
        return items, True, None
    return _parse_whitespace_list(rest, escape)


def _parse_health_config(rest: str, escape: str) -> _Result:
    sep = 0
    while sep < len(rest) and not go_is_space(rest[sep]):
        sep += 1
    nxt = sep
    while nxt < len(rest) and go_is_space(rest[nxt]):
        nxt += 1
    if sep == 0:
        return [], False, None
    args, is_json, _ = _parse_maybe_json(rest[nxt:], escape)
    return [rest[:sep], *args], is_json, None


_DISPATCH: dict[str, Callable[[str, str], _Result]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_whitespace_list,
    "from": _parse_whitespace_list,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}
INSTRUCTIONS = tuple(sorted(_DISPATCH))


# -- heredocs ------------------------------------------------------------------

_HEREDOC_LINE_LEX = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
_HEREDOC_WORD_LEX = ShellLex("\\", skip_unset=True)
_HEREDOC_WORD_RAW_LEX = ShellLex("\\", raw_quotes=True, skip_unset=True)


def heredocs_from_line(line: str) -> list[Heredoc]:
    """The heredoc openers among the words of an instruction line, in order."""
    try:
        words = _HEREDOC_LINE_LEX.expand_words(line, {})
    except ShellExpansionError:
        return []
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def parse_heredoc(word: str) -> Heredoc | None:
    """A Heredoc (without content) if `word` opens one, else None.

    Raises ValueError if the delimiter word cannot be lexed.
    """
    m = _HEREDOC.match(word)
    if m is None:
        return None
    fd_text, chomp, rest = m.groups()
    if not rest:
        return None
    try:
        words = _HEREDOC_WORD_LEX.expand_words(rest, {})
        raw_words = _HEREDOC_WORD_RAW_LEX.expand_words(rest, {})
    except ShellExpansionError as exc:
        raise ValueError(exc.message) from None
    if len(words) != 1:
        return None
    if len(raw_words) != 1:
        raise ValueError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw_words[0].count("'") + raw_words[0].count('"')
    return Heredoc(
        name=name,
        file_descriptor=int(fd_text) if fd_text else 0,
        expand=quotes == raw_quotes,
        chomp=chomp == "-",
    )


def chomp_heredoc(content: str) -> str:
    """Remove the leading tabs of every line (the `<<-` form)."""
    return _leading_tabs().sub("", content)
