"""--chmod values as BuildKit reads them (frontend/dockerfile/dockerfile2llb/convert_copy.go:
octal up to 07777, else tonistiigi/dchapes-mode, BSD setmode's rules with umask 0, applied
to each entry's own mode; `X` looks at the mode before the change)."""

from __future__ import annotations

import pytest

from ocibuild.frontend.dockerfile.convert_flags import FlagError, parse_chmod

CASES = [
    # (value, mode before, is a directory, mode after)
    ("0755", 0o600, False, 0o755),
    ("4755", 0o600, False, 0o4755),
    ("u=rwx,g=rx,o=", 0o644, False, 0o750),
    ("+x", 0o600, False, 0o711),
    ("a+r,u-w", 0o640, False, 0o444),
    ("go+rX", 0o600, False, 0o644),  # no one may execute it: X adds nothing
    ("go+rX", 0o700, False, 0o755),
    ("go+rX", 0o700, True, 0o755),  # a directory always gets search
    ("go=u-w", 0o750, False, 0o755),  # copy the owner's bits, then drop write
    ("=rw,+X", 0o755, False, 0o777),  # X looks at the mode before: it was executable
    ("o+t", 0o644, False, 0o644),  # the sticky bit is ignored for "other" alone
    ("+t", 0o644, False, 0o1644),
    ("u+s,g+s", 0o755, False, 0o6755),
    ("a=", 0o1777, False, 0o1000),  # '=' clears the classes named; sticky is no class
    ("u=g,o-r", 0o754, False, 0o550),
]


@pytest.mark.parametrize(("value", "before", "is_dir", "after"), CASES)
def test_mode_after_chmod(value: str, before: int, is_dir: bool, after: int) -> None:
    assert parse_chmod(value).apply(before, is_dir) == after


@pytest.mark.parametrize("value", ["0o755", "7_5", "0999", "17777", "u+q", "u", "a=,", "x+"])
def test_invalid_values_are_refused(value: str) -> None:
    with pytest.raises(FlagError, match="invalid chmod parameter"):
        parse_chmod(value)
