"""Registry errors: each names the reference (or URL) and the HTTP status.

Their messages quote what a registry sent (error bodies, headers, realms), so every
non-printing character in them is escaped: a registry must not write to the terminal."""

from __future__ import annotations

from ocibuild.errors import OcibuildError, printable


class RegistryError(OcibuildError):
    """A registry answered with an error status, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(printable(message))
        self.status = status


class AuthenticationError(RegistryError):
    """Credentials were refused (HTTP 401) or are missing where the registry needs them."""


class NotFoundError(RegistryError):
    """The registry has no such manifest, tag, blob or repository (HTTP 404)."""


class UnreachableError(RegistryError):
    """No connection could be made (DNS, refused, timeout, TLS handshake)."""


def describe_status(status: int) -> str:
    from http import HTTPStatus  # an enum of 60 members: only when an error is described

    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def registry_message(body: bytes) -> str:
    """The message from a registry's JSON error body (`{"errors":[{code,message}]}`),
    escaped for a terminal."""
    return printable(_message(body))


def _message(body: bytes) -> str:
    import json  # here: only a failed request has a body to read

    try:
        doc = json.loads(body[:65536].decode("utf-8", "replace"))
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
        return text if text and "<" not in text[:1] else ""
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors:
            parts = []
            for e in errors[:3]:
                if isinstance(e, dict):
                    code = str(e.get("code") or "").strip()
                    msg = str(e.get("message") or "").strip()
                    parts.append(f"{code}: {msg}" if code and msg else code or msg)
            return "; ".join(p for p in parts if p)
        for key in ("details", "error", "message"):
            if isinstance(doc.get(key), str):
                return doc[key]
    return ""


def error_for_status(what: str, status: int, body: bytes = b"") -> RegistryError:
    """An error saying `what` (reference and operation) failed with `status`."""
    detail = registry_message(body)
    message = f"{what}: {describe_status(status)}" + (f" ({detail})" if detail else "")
    if status == 401:
        return AuthenticationError(message + "; check the credentials (ocibuild login)",
                                   status=status)
    if status == 403:
        return AuthenticationError(message + "; the credentials lack permission", status=status)
    if status == 404:
        return NotFoundError(message, status=status)
    return RegistryError(message, status=status)
