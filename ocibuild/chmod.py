"""COPY/ADD --chmod values: an octal mode, or a chmod(1) symbolic one (Dockerfile 1.14+).

BuildKit parses the symbolic form with BSD setmode's rules (tonistiigi/dchapes-mode,
umask 0) and applies it to each copied entry's own mode (fsutil's copy), directories
included; an octal value replaces the mode outright. Clauses are comma-separated, each
`[ugoa]*` then one or more `[+-=]` operations taking `rwxXst` or a class to copy
(`go=u-w`). Without a class an operation applies to all (there is no umask). `X` adds
search/execute only to directories and to files already executable by someone.

`git_mode` is what `--context-modes=git` makes of a context entry's mode: git records
only whether a file is executable, and a checkout's other bits come from the umask of
whoever cloned it, so the same commit differs between machines unless the bits are
taken as git knows them.

Imported by the file-op helper process, so it imports nothing of ocibuild.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass

_SUID, _SGID, _STICKY = 0o4000, 0o2000, 0o1000
_USER, _GROUP, _OTHER = 0o700, 0o070, 0o007
_STANDARD = _SUID | _SGID | _USER | _GROUP | _OTHER
_ALL = 0o7777
_OCTAL = re.compile(r"[0-7]+")
_READ, _WRITE, _EXEC = 0o444, 0o222, 0o111
# copy-from-class command flags
_CLEAR, _SET, _TO_U, _TO_G, _TO_O = 1, 2, 4, 8, 16


class ModeSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class ModeChange:
    """A parsed --chmod: apply() gives the new permission bits for an entry's mode."""

    absolute: int | None  # an octal value
    commands: tuple[tuple[str, int, int], ...] = ()  # (command, flags, bits)

    def apply(self, st_mode: int, is_dir: bool) -> int:
        if self.absolute is not None:
            return self.absolute
        old = st_mode & _ALL
        new = old
        for cmd, flags, bits in self.commands:
            if cmd == "+":
                new |= bits
            elif cmd == "-":
                new &= ~bits
            elif cmd == "X":
                if old & _EXEC or is_dir:
                    new |= bits
            else:  # copy the permissions of class u, g or o (as they are now)
                shift = {"u": 6, "g": 3, "o": 0}[cmd]
                value = (new >> shift) & 0o7
                for flag, to in ((_TO_U, 6), (_TO_G, 3), (_TO_O, 0)):
                    if not flags & flag:
                        continue
                    if flags & _CLEAR:
                        new &= ~(((0o7 if flags & _SET else value) << to) & bits)
                    if flags & _SET:
                        new |= (value << to) & bits
        return new & _ALL


def git_mode(st_mode: int) -> int:
    """The permission bits git would check the entry out with under umask 022: a
    regular file 0644, or 0755 if anyone may execute it; a directory 0755; anything
    else (a symbolic link) keeps its own."""
    if stat.S_ISREG(st_mode):
        return 0o755 if st_mode & _EXEC else 0o644
    if stat.S_ISDIR(st_mode):
        return 0o755
    return st_mode & _ALL


def is_octal(text: str) -> bool:
    """Whether `text` is the octal form (which replaces the mode, whatever it was)."""
    return _OCTAL.fullmatch(text) is not None


def parse(text: str) -> ModeChange:
    """Parse a --chmod value; ModeSyntaxError when it is neither form."""
    if not text:
        raise ModeSyntaxError("empty mode")
    if text[0].isdigit():
        if not is_octal(text):
            raise ModeSyntaxError("not an octal number")
        value = int(text, 8)
        if value > _ALL:
            raise ModeSyntaxError("above 07777")
        return ModeChange(value)
    return ModeChange(None, tuple(_Parser(text).commands()))


class _Parser:
    def __init__(self, text: str) -> None:
        self.rest = text
        self.out: list[tuple[str, int, int]] = []

    def _add(self, op: str, who: int, arg: int) -> None:
        if op == "=":  # clear the classes named (all when none), then add
            self.out.append(("-", 0, who or _STANDARD))
            op = "+"
        if op in "+-X":
            self.out.append((op, 0, (who & arg) if who else arg))
            return
        if who:
            flags = ((_TO_U if who & 0o400 else 0) | (_TO_G if who & 0o040 else 0)
                     | (_TO_O if who & 0o004 else 0))
            bits = 0xFFFF
        else:
            flags, bits = _TO_U | _TO_G | _TO_O, 0xFFFF
        flags |= {"+": _SET, "-": _CLEAR, "=": _SET | _CLEAR}[chr(arg)]
        self.out.append((op, flags, bits))

    def commands(self) -> list[tuple[str, int, int]]:
        equal_done = False
        while True:
            who = 0
            while True:  # the classes
                if not self.rest:
                    raise ModeSyntaxError("a class without an operation")
                c = self.rest[0]
                if c not in "augo":
                    break
                who |= {"a": _STANDARD, "u": _SUID | _USER, "g": _SGID | _GROUP,
                        "o": _OTHER}[c]
                self.rest = self.rest[1:]
            while True:  # operations on those classes
                op, self.rest = self.rest[0], self.rest[1:]
                if op not in "+-=":
                    raise ModeSyntaxError(f"unexpected {op!r}")
                if op == "=":
                    equal_done = False
                who &= ~_STICKY
                who, equal_done = self._permissions(op, who, equal_done)
                if not self.rest:
                    return self.out
                if self.rest[0] == ",":
                    self.rest = self.rest[1:]
                    break

    def _permissions(self, op: str, who: int, equal_done: bool) -> tuple[int, bool]:
        perm = perm_x = 0
        not_only_other = who == 0 or bool(who & ~_OTHER)
        while True:
            c = self.rest[0] if self.rest else ""
            if c == "r":
                perm |= _READ
            elif c == "w":
                perm |= _WRITE
            elif c == "x":
                perm |= _EXEC
            elif c == "X":
                if op == "-":
                    perm |= _EXEC
                else:
                    perm_x = _EXEC
            elif c == "s":
                if not_only_other:
                    perm |= _SUID | _SGID
            elif c == "t":
                if not_only_other:
                    who |= _STICKY
                    perm |= _STICKY
            elif c and c in "ugo":
                if perm:
                    self._add(op, who, perm)
                    perm = 0
                if op == "=":
                    equal_done = True
                if perm_x:
                    self._add("X", who, perm_x)
                    perm_x = 0
                self._add(c, who, ord(op))
            else:
                if perm or (op == "=" and not equal_done):
                    if op == "=":
                        equal_done = True
                    self._add(op, who, perm)
                if perm_x:
                    self._add("X", who, perm_x)
                return who, equal_done
            self.rest = self.rest[1:]
