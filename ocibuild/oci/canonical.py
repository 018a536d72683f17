"""Canonical JSON: the exact bytes we hash are the bytes we write."""

from __future__ import annotations

import json
from typing import Any


def dumps(obj: Any) -> bytes:
    """Compact JSON with sorted keys, UTF-8, no trailing newline."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes | str, what: str = "JSON document") -> Any:
    from ocibuild.errors import OcibuildError

    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OcibuildError(f"{what} is not valid JSON: {exc}") from None
