"""BuildKit's shell-lexer conformance data plus the substitution forms it documents."""

from __future__ import annotations

import pytest

from ocibuild.frontend.dockerfile.errors import ShellExpansionError
from ocibuild.frontend.dockerfile.shell import ShellLex
from tests.support.paths import SHARED, needs_shared, without_shared

SHELL_DATA = SHARED / "conformance" / "buildkit" / "shell"
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_cases() -> list[tuple[int, str, str]]:
    cases = []
    text = (SHELL_DATA / "envVarTest").read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("#") or not line.strip():
            continue
        platform, source, expected = (part.strip() for part in line.split("|"))
        if platform in ("A", "U"):
            cases.append((number, source, expected))
    return cases


ENV_VAR_CASES = (_env_var_cases() if SHELL_DATA.is_dir()
                 else without_shared(SHELL_DATA, 0, "", ""))


@needs_shared(SHELL_DATA)
def test_env_var_data_is_complete() -> None:
    assert len(ENV_VAR_CASES) == 228


@pytest.mark.parametrize(("number", "source", "expected"), ENV_VAR_CASES,
                         ids=[f"line{c[0]}" for c in ENV_VAR_CASES])
def test_env_var_line(number: int, source: str, expected: str) -> None:
    lex = ShellLex()
    if expected == "error":
        with pytest.raises(ShellExpansionError):
            lex.expand_word(source, ENV)
    else:
        assert lex.expand_word(source, ENV) == expected


def _words_cases() -> list[tuple[int, dict[str, str], str, list[str]]]:
    cases = []
    env: dict[str, str] = {}
    text = (SHELL_DATA / "wordsTest").read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        if line.startswith("ENV "):
            key, value = line[3:].lstrip(" ").split("=", 1)
            env = {**env, key: value}
            continue
        source, expected = line.split("|")
        cases.append((number, env, source.strip(), expected.lstrip(" ").split(",")))
    return cases


WORDS_CASES = (_words_cases() if SHELL_DATA.is_dir()
               else without_shared(SHELL_DATA, 0, {}, "", []))

# BuildKit runs wordsTest a second time with RawQuotes and SkipUnsetEnv (the
# mode its parser uses to find heredocs). The file's expected column is for
# normal mode; in raw mode quotes stay in the words and unset variables stay as
# written. (Upstream's second pass reads an already exhausted file, so it checks
# nothing; these are the answers its lexer gives.)
RAW_MODE_WORDS = {  # by line number of wordsTest
    1: ["hello"],
    2: ["hello${hi}bye"],
    4: ["hellohibye"],
    6: ["helloabc", "defbye"],
    7: ['hello"abc  def"bye'],
    8: ["hello", '"abc  def"bye'],
    10: ["hello", "ab", "cdef"],
    11: ['hello"  ab c"', "def"],
    12: ['hello"  ab c"'],
    13: ["hello", "ab", "c"],
    16: ["helloab", "c"],
    17: ["helloab", "c", "d"],
    18: ['hello"ab c   "d'],
    20: ['hel"loab c   "'],
    21: ['hello" there  "'],
    22: ["hello", "there"],
    23: ["hello there"],
    24: ["error"],
    25: ['hello"', "there"],
    26: ['hello"\\there"'],
    27: ['hello"\\there"'],
    28: ["hello'\\\\there'"],
    29: ["hello'\\there'"],
    30: ["hello'$there'"],
}


def _words(lex: ShellLex, source: str, env: dict[str, str]) -> list[str]:
    try:
        return lex.expand_words(source, env)
    except ShellExpansionError:
        return ["error"]


@pytest.mark.parametrize(("number", "env", "source", "expected"), WORDS_CASES,
                         ids=[f"line{c[0]}" for c in WORDS_CASES])
def test_words_normal_mode(number: int, env: dict[str, str], source: str,
                           expected: list[str]) -> None:
    assert _words(ShellLex(), source, env) == expected


@pytest.mark.parametrize(("number", "env", "source", "expected"), WORDS_CASES,
                         ids=[f"line{c[0]}" for c in WORDS_CASES])
def test_words_raw_quotes_skip_unset_mode(number: int, env: dict[str, str], source: str,
                                          expected: list[str]) -> None:
    lex = ShellLex(raw_quotes=True, skip_unset=True)
    got = _words(lex, source, env)
    assert got == RAW_MODE_WORDS[number]
    if not any(q in source for q in "'\"") and number != 2:
        assert got == expected  # nothing to keep raw: same answer as normal mode


@pytest.mark.parametrize(
    ("word", "env", "expected"),
    [
        ("${V#*/}", {"V": "a/b/c"}, "b/c"),
        ("${V##*/}", {"V": "a/b/c"}, "c"),
        ("${V%/*}", {"V": "a/b/c"}, "a/b"),
        ("${V%%/*}", {"V": "a/b/c"}, "a"),
        ("${V#x}", {"V": "a/b/c"}, "a/b/c"),
        ("${V%.tar.gz}", {"V": "pkg.tar.gz"}, "pkg"),
        ("${V#?}", {"V": "abc"}, "bc"),
        ("${V%%\\**}", {"V": "ab*cd*"}, "ab"),
        ("${V/o/0}", {"V": "foo boo"}, "f0o boo"),
        ("${V//o/0}", {"V": "foo boo"}, "f00 b00"),
        ("${V//[/(}", {"V": "a[b[c"}, "a(b(c"),
        ("${V/o*/X}", {"V": "foo boo"}, "fX"),
        ("${V//x/y}", {"V": "abc"}, "abc"),
        ("${U/a/b}", {}, ""),
        ("${V-d}", {"V": ""}, ""),
        ("${V:-d}", {"V": ""}, "d"),
        ("${U-d}", {}, "d"),
        ("${V+s}", {"V": ""}, "s"),
        ("${V:+s}", {"V": ""}, ""),
        ("${V?}", {"V": ""}, ""),
        ("${V:?m}", {"V": "x"}, "x"),
        ("a$V'$V'\"$V\"", {"V": "1"}, "a1$V1"),
    ],
)
def test_substitution_forms(word: str, env: dict[str, str], expected: str) -> None:
    assert ShellLex().expand_word(word, env) == expected


@pytest.mark.parametrize(
    ("word", "env", "message"),
    [
        ("${V:?must be set}", {}, "V: must be set"),
        ("${V:?}", {"V": ""}, "V: is not allowed to be empty"),
        ("${V?}", {}, "V: is not allowed to be unset"),
        ("${V:#x}", {"V": "x"}, "unsupported modifier (:#)"),
        ("${V#\\x}", {"V": "x"}, "invalid escape"),
        ("${V/x", {"V": "x"}, "missing '/'"),
        ("${V", {}, "unsupported modifier"),
        ("${V:-x", {}, "missing '}'"),
    ],
)
def test_substitution_errors_explain_themselves(word: str, env: dict[str, str],
                                                message: str) -> None:
    with pytest.raises(ShellExpansionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ShellLex().expand_word(word, env)


def test_process_reports_used_and_unset_variables() -> None:
    result = ShellLex().process("$A ${B:-x} ${C}", {"A": "1", "C": "3"})
    assert result.result == "1 x 3"
    assert result.words == ["1", "x", "3"]
    assert result.matched == {"A", "C"}
    assert result.unmatched == {"B"}


def test_backtick_escape() -> None:
    lex = ShellLex("`")
    assert lex.expand_word("C:\\dir `$HOME", {"HOME": "x"}) == "C:\\dir $HOME"
    assert lex.expand_words("a` b c", {}) == ["a b", "c"]


def test_skip_unset_keeps_unknown_variables_verbatim() -> None:
    lex = ShellLex(skip_unset=True)
    word = "$A ${B} ${C:-x} ${D/a/b} $E"
    assert lex.expand_word(word, {"E": "e"}) == "$A ${B} ${C:-x} ${D/a/b} e"
