"""Flag values the converter checks once they are expanded: COPY/ADD --chmod."""

from __future__ import annotations

import re

from ocibuild.errors import OcibuildError


class FlagError(OcibuildError):
    pass


def parse_chmod(text: str) -> int:
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise FlagError(f"invalid --chmod value {text!r}: expected an octal mode like 0755")
    return int(text, 8)
