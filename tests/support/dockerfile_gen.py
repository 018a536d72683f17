"""Hypothesis strategies for Dockerfile text: plausible ones and arbitrary ones."""

from __future__ import annotations

from hypothesis import strategies as st

KEYWORDS = [
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER",
    "run", "Copy", "FOO",
]
# no "<" or "[": heredocs and JSON arrays come from their own pieces, because
# BuildKit v0.12.5 (the test oracle) read text after a JSON array differently
WORD_CHARS = "abcXYZ019_-./:@=$ {}\"'\\,>#`*?!&|;()%+"
_word = st.text(alphabet=WORD_CHARS.replace(" ", ""), min_size=1, max_size=8)
_piece = st.one_of(
    _word,
    st.sampled_from(["$A", "${A:-x}", '"a b"', "'c d'", "\\ ", '"', ",", "=",
                     "<<EOF", "<<-EOF", '<<"EOF"', "3<<EOF", "\\"]),
)
_flag = st.builds(
    lambda name, value: f"--{name}" + (f"={value}" if value is not None else ""),
    st.sampled_from(["from", "chown", "mount", "link", "platform", "x", "interval", "network"]),
    st.none() | st.text(alphabet="abc019=,/:$", max_size=6),
)
_json = st.lists(st.text(alphabet="ab c\\\"'$", max_size=5), max_size=3).map(
    lambda items: "[" + ", ".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                  for i in items) + "]"
)
_sep = st.sampled_from([" ", "  ", "\t"])


@st.composite
def instruction(draw: st.DrawFn, escape: str = "\\") -> list[str]:
    keyword = draw(st.sampled_from(KEYWORDS))
    parts = [keyword]
    if keyword.upper() == "ONBUILD":
        parts.append(draw(st.sampled_from(["RUN", "COPY", "ADD", "CMD", "ENV"])))
    parts += draw(st.lists(_flag, max_size=2))
    is_json = draw(st.booleans())
    if is_json:
        parts.append(draw(_json))
    else:
        parts += draw(st.lists(_piece, max_size=5))
    text = ""
    for part in parts:
        text += part + draw(_sep)
    text = text.rstrip(" \t") if draw(st.booleans()) else text
    lines = [text]
    # continuation lines, possibly with comments and blank lines inside
    # (text after a JSON array is read differently by BuildKit v0.12.5, the oracle)
    for _ in range(0 if is_json else draw(st.integers(0, 2))):
        lines[-1] += escape
        lines += draw(st.lists(st.sampled_from(["", "# inside", "   "]), max_size=2))
        lines.append(draw(_sep) + " ".join(draw(st.lists(_piece, min_size=1, max_size=3))))
    if "<<" in lines[-1] and draw(st.booleans()):
        lines += draw(st.lists(st.sampled_from(["echo $A", "\tindented", "", "x y"]), max_size=3))
        lines.append(draw(st.sampled_from(["EOF", "\tEOF", "NOPE"])))
    return lines


@st.composite
def dockerfile_text(draw: st.DrawFn) -> str:
    lines: list[str] = []
    if draw(st.booleans()):  # (no `check=`: BuildKit v0.12.5, the oracle, predates it)
        lines += draw(st.lists(st.sampled_from(
            ["# syntax=docker/dockerfile:1", "# escape=`", "#escape=\\"]
        ), max_size=2, unique=True))
    lines.append("FROM base")
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["", "# comment", "  # indented comment"])))
        lines += draw(instruction("`" if "# escape=`" in lines else "\\"))
    ending = draw(st.sampled_from(["\n", "", "\r\n"]))
    return ending.join(lines) + ending if ending else "\n".join(lines)


arbitrary_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300
) | st.lists(
    st.sampled_from(["FROM a", "RUN", "<<EOF", "EOF", "\\", "`", "#", "# escape=`", "\n",
                     "[", "]", '"', "'", "$", "${", "}", " ", "\t", "--x", "=", "ONBUILD",
                     "HEALTHCHECK", "CMD", "COPY", "\r", "\x85", "\u3000", "é"]),
    max_size=60,
).map("".join)
