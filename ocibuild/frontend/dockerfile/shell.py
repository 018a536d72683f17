"""BuildKit's shell word processing: variable expansion, quotes, escapes, splitting.

This is what a Dockerfile does to the words of ENV, ARG, COPY, WORKDIR, ... (not
to RUN, whose text goes to a real shell). The behaviour follows BuildKit's
`frontend/dockerfile/shell` lexer and its conformance data (`envVarTest`,
`wordsTest`).

Public API:

- `ShellLex(escape="\\\\", *, raw_quotes=False, raw_escapes=False,
  skip_unset=False, skip_process_quotes=False)`: a lexer configured like
  BuildKit's `shell.Lex`.
- `ShellLex.expand_word(word, env) -> str`: one word, spaces kept (ProcessWord).
- `ShellLex.expand_words(word, env) -> list[str]`: expansion then word
  splitting on unquoted whitespace (ProcessWords).
- `ShellLex.process(word, env) -> Expansion`: both results plus the names of
  the variables that were found (`matched`) and not found (`unmatched`).
- `go_is_space(ch) -> bool`: Go's `unicode.IsSpace`, used by the parser too.
- `go_fields(text) -> list[str]`: Go's `strings.Fields` (whitespace splitting).

`env` is any mapping of name to value. Errors raise `ShellExpansionError`.
Supported forms: `$V ${V} ${V:-w} ${V-w} ${V:+w} ${V+w} ${V:?m} ${V?m} ${V#p}
${V##p} ${V%p} ${V%%p} ${V/p/r} ${V//p/r}`; patterns use `*` and `?`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from ocibuild.deferred import deferred_dataclass
from ocibuild.frontend.dockerfile.errors import ShellExpansionError

_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# characters with a meaning in a shell word: anything else is copied as is
_PLAIN_WORD = re.compile(r"[^$'\"<\\`]*\Z")


@functools.cache
def _space_run() -> re.Pattern[str]:
    return re.compile("[" + "".join(sorted(_GO_SPACES)) + "]+")


def go_is_space(ch: str) -> bool:
    """Go's unicode.IsSpace (Python's str.isspace also accepts \\x1c-\\x1f)."""
    return ch in _GO_SPACES


@deferred_dataclass(frozen=True)
class Expansion:
    """The result of processing one word."""

    result: str
    words: list[str]
    matched: frozenset[str]
    unmatched: frozenset[str]


class _Words:
    """Word splitting of the text produced so far (BuildKit's wordsStruct)."""

    __slots__ = ("buf", "words", "in_word")

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACES:
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.buf.append(ch)
            self.in_word = True

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for i, part in enumerate(_space_run().split(text)):
            if i and self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
            if part:
                self.buf.append(part)
                self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            word = "".join(self.buf)
            if word:
                self.words.append(word)
            self.buf.clear()
            self.in_word = False
        return self.words


class ShellLex:
    """A configured BuildKit-compatible shell lexer (not thread-safe per call)."""

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset: bool = False,
        skip_process_quotes: bool = False,
    ) -> None:
        if escape not in ("\\", "`"):
            raise ValueError(f"escape must be \\ or `, not {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_process_quotes = skip_process_quotes

    def expand_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand variables and remove quotes; whitespace is kept."""
        if _PLAIN_WORD.match(word) and self.escape not in word:
            return word
        return self.process(word, env).result

    def expand_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand, then split on whitespace that is not quoted or escaped."""
        if _PLAIN_WORD.match(word) and self.escape not in word:
            return go_fields(word)
        return self.process(word, env).words

    def process(self, word: str, env: Mapping[str, str]) -> Expansion:
        state = _Process(self, word, env)
        try:
            result, words = state.stop_on(None, self.raw_escapes)
        except ShellExpansionError as exc:
            message = f"failed to process {_go_quote(word)}: {exc.message}"
            raise ShellExpansionError(message) from None
        return Expansion(result, words, frozenset(state.matched), frozenset(state.unmatched))


def go_fields(text: str) -> list[str]:
    """Go's strings.Fields: the runs of non-space characters (no quotes or escapes)."""
    return [w for w in _space_run().split(text) if w]


def _go_quote(text: str) -> str:
    from ocibuild.frontend.dockerfile.gostr import go_quote

    return go_quote(text)


class _Process:
    """One run of the lexer over one word (BuildKit's shellWord)."""

    def __init__(self, lex: ShellLex, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.s = text
        self.n = len(text)
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    # -- scanner
    def peek(self) -> str | None:
        return self.s[self.pos] if self.pos < self.n else None

    def next(self) -> str | None:
        if self.pos < self.n:
            ch = self.s[self.pos]
            self.pos += 1
            return ch
        return None

    def get_env(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        if value is None:
            self.unmatched.add(name)
            return "", False
        self.matched.add(name)
        return value, True

    # -- words
    def stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def read_until(self, stop: str, raw_escapes: bool, missing: str) -> str:
        """The text up to `stop` inside ${...}; `missing` is the error if the word ends
        first (an error from deeper in the text is kept)."""
        try:
            return self.stop_on(stop, raw_escapes)[0]
        except ShellExpansionError:
            if self.peek() is None:
                raise ShellExpansionError(missing) from None
            raise

    def _stop_on(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        quotes = not self.lex.skip_process_quotes
        escape = self.lex.escape
        s = self.s
        while self.pos < self.n:
            ch = s[self.pos]
            if stop is not None and ch == stop:
                self.pos += 1
                return "".join(result), words.result()
            if ch == "$":
                tmp = self.dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch == "<":
                tmp = self.possible_heredoc()
                result.append(tmp)
                words.add_raw(tmp)
            elif quotes and ch == "'":
                tmp = self.single_quote()
                result.append(tmp)
                words.add_raw(tmp)
            elif quotes and ch == '"':
                tmp = self.double_quote()
                result.append(tmp)
                words.add_raw(tmp)
            else:
                self.pos += 1
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    if self.pos >= self.n:
                        break
                    ch = s[self.pos]
                    self.pos += 1
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise ShellExpansionError(
                f"unexpected end of statement while looking for matching {stop}"
            )
        return "".join(result), words.result()

    def single_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append("'")
        while True:
            ch = self.next()
            if ch is None:
                raise ShellExpansionError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        out: list[str] = []
        self.next()
        if self.lex.raw_quotes:
            out.append('"')
        escape = self.lex.escape
        while True:
            ch = self.peek()
            if ch is None:
                raise ShellExpansionError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.pos += 1
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt is None:
                    continue
                if nxt in ('"', "$", escape):
                    ch = nxt
                    self.pos += 1
            out.append(ch)

    def possible_heredoc(self) -> str:
        self.pos += 1
        if self.peek() != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while self.pos < self.n and self.s[self.pos] in "\t\r ":
            self.pos += 1
        return "<<" + self.s[start : self.pos]

    def name(self) -> str:
        start = self.pos
        s, n = self.s, self.n
        if self.pos < n:
            ch = s[self.pos]
            if ch.isdecimal():
                while self.pos < n and s[self.pos].isdecimal():
                    self.pos += 1
                return s[start : self.pos]
            if ch in _SPECIAL_PARAMS:
                self.pos += 1
                return ch
        while self.pos < n:
            ch = s[self.pos]
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            self.pos += 1
        return s[start : self.pos]

    def dollar(self) -> str:
        self.pos += 1
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset:
                return "$" + name
            return value

        self.pos += 1
        first = self.peek()
        if first is None:
            raise ShellExpansionError("syntax error: missing '}'")
        if first in "{}:":
            raise ShellExpansionError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._replace(name)
        if ch is None or ch not in ":+-?#%":
            raise ShellExpansionError(f"unsupported modifier ({ch or ''}) in substitution")

        chs = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch or ""
        trims = ch in ("#", "%")
        if null_is_unset and trims:
            raise ShellExpansionError(f"unsupported modifier ({chs}) in substitution")
        word = self.read_until("}", trims, "syntax error: missing '}'")

        value, is_set = self.get_env(name)
        if self.lex.skip_unset and not is_set:
            return "${" + name + chs + word + "}"
        empty = not is_set or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not is_set:
                raise ShellExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ShellExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = False
            if word.startswith(ch):
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise ShellExpansionError(f"unsupported modifier ({chs}) in substitution")

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.pos += 1
        pattern = self.read_until("/", True, "syntax error: missing '/' in ${}")
        replacement = self.read_until("}", True, "syntax error: missing '}'")
        value, is_set = self.get_env(name)
        if self.lex.skip_unset and not is_set:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda m: _go_expand(replacement, m), value)
        m = regex.search(value)
        if m is None:
            return value
        return value[: m.start()] + replacement + value[m.end() :]


_REGEX_SPECIAL = frozenset("[]{}.+()|^$")


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (`*`, `?`, backslash escapes; no brackets) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            nxt = pattern[i] if i < n else None
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                raise ShellExpansionError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt or ''}'"
                )
            out.append("\\" + nxt)
            i += 1
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(re.escape(ch) if not ch.isalnum() and ch != "_" else ch)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    # reverse, keeping each escape before the character it escapes
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        ch = pattern[i]
        if ch == "\\" and i != last:
            out[last - i - 1] = ch
            out[last - i] = pattern[i + 1]
            i += 2
        else:
            out[last - i] = ch
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # regexes find leftmost matches: reverse both to find the rightmost one
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


@functools.cache
def _go_template_name() -> re.Pattern[str]:
    return re.compile(r"[A-Za-z0-9_]+")


def _go_expand(template: str, match: re.Match[str]) -> str:
    """Go's Regexp.ReplaceAllString template: $0, ${0}, $$ (no named groups here)."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        if i < n and template[i] == "{":
            close = template.find("}", i)
            name_m = _go_template_name().fullmatch(template, i + 1, close) if close > 0 else None
            if name_m is None:
                out.append("$")
                continue
            name, i = name_m.group(0), close + 1
        else:
            name_m = _go_template_name().match(template, i)
            if name_m is None:
                out.append("$")
                continue
            name, i = name_m.group(0), name_m.end()
        if name == "0":
            out.append(match.group(0))
    return "".join(out)
