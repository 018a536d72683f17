"""Flag values the converter checks once they are expanded: COPY/ADD --chmod."""

from __future__ import annotations

from ocibuild import chmod
from ocibuild.errors import OcibuildError


class FlagError(OcibuildError):
    pass


def parse_chmod(text: str) -> chmod.ModeChange:
    """An octal mode up to 07777, or a symbolic one (u=rwx,go=rx, +x, a+r,u-w), as
    BuildKit's convert_copy.go accepts them."""
    try:
        return chmod.parse(text)
    except chmod.ModeSyntaxError as exc:
        if text[:1].isdigit():
            raise FlagError(f"invalid chmod parameter: {text!r}: it should be an octal "
                            "string between 0 and 07777") from None
        raise FlagError(f"invalid chmod parameter: {text!r}: {exc} (expected an octal "
                        "mode like 0755 or a symbolic one like u=rwx,go=rx)") from None
