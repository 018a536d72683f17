"""Instruction flags (`--name=value`) with validation and "did you mean" suggestions.

- `FlagSpec(name, kind)`: kind is "bool", "string" or "strings" (repeatable).
- `parse_flags(raw_flags, specs, instruction) -> dict[str, bool | str | tuple[str, ...]]`:
  only the flags that were given; raises `FlagError` naming the flag and, for
  an unknown one, the nearest valid flag.
- `nearest(word, options) -> str | None`: closest option by edit distance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class FlagError(ValueError):
    def __init__(self, message: str, flag: str) -> None:
        super().__init__(message)
        self.flag = flag


@dataclass(frozen=True)
class FlagSpec:
    """A flag an instruction takes (`--from`, `--mount`, ...) and the kind of value it has."""
    name: str
    kind: str = "string"  # "bool" | "string" | "strings"


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance where swapping two neighbours also costs 1 (typos)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def nearest(word: str, options: Iterable[str]) -> str | None:
    """The option closest to `word`, if it is plausibly a misspelling of it."""
    best, best_dist = None, max(3, len(word) // 2 + 1)
    for opt in sorted(options):
        dist = edit_distance(word.lower(), opt.lower())
        if dist < best_dist:
            best, best_dist = opt, dist
    return best


def parse_flags(
    raw_flags: Sequence[str], specs: Sequence[FlagSpec], instruction: str
) -> dict[str, bool | str | tuple[str, ...]]:
    by_name = {s.name: s for s in specs}
    values: dict[str, bool | str | tuple[str, ...]] = {}
    for raw in raw_flags:
        if raw == "--":
            break
        if not raw.startswith("--"):
            raise FlagError(f"arg should start with -- : {raw}", raw)
        flag_name, has_value, value = raw.partition("=")
        name = flag_name[2:]
        spec = by_name.get(name)
        if spec is None:
            raise FlagError(_unknown(flag_name, instruction, by_name), flag_name)
        if name in values and spec.kind != "strings":
            raise FlagError(f"duplicate flag specified: {flag_name}", flag_name)
        if spec.kind == "bool":
            if has_value and value == "":
                raise FlagError(f"missing a value on flag: {flag_name}", flag_name)
            lowered = value.lower()
            if lowered not in ("", "true", "false"):
                raise FlagError(
                    f"expecting boolean value for flag {flag_name}, not: {value}", flag_name
                )
            values[name] = lowered != "false"
        elif not has_value:
            raise FlagError(f"missing a value on flag: {flag_name}", flag_name)
        elif spec.kind == "strings":
            previous = values.get(name, ())
            assert isinstance(previous, tuple)
            values[name] = (*previous, value)
        else:
            values[name] = value
    return values


def _unknown(flag_name: str, instruction: str, by_name: dict[str, FlagSpec]) -> str:
    if not by_name:
        return f"unknown flag: {flag_name} ({instruction} takes no flags)"
    guess = nearest(flag_name[2:], by_name)
    if guess is not None:
        return f"unknown flag: {flag_name} for {instruction} (did you mean --{guess}?)"
    valid = ", ".join(f"--{n}" for n in sorted(by_name))
    return f"unknown flag: {flag_name} for {instruction} (valid flags: {valid})"
