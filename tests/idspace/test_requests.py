"""Typed requests: what goes on the wire, and what is refused on arrival before any
handler runs."""

from __future__ import annotations

import json

import pytest

from ocibuild.idspace import requests
from ocibuild.idspace.requests import Request, RequestError, RootFS, handler, request_type

answered: list[object] = []


@request_type
class Resize(Request[int]):
    root: RootFS
    paths: tuple[str, ...]
    size: int
    sparse: bool
    label: str | None = None


@handler(Resize)
def _resize(request: Resize) -> int:
    answered.append(request)
    return request.size * 2


@request_type
class Unanswered(Request[None]):
    path: str


def _message(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "root": {"lowers": ["/l1", "/l2"], "upper": "/u", "work": "/w"},
        "paths": ["a", "b"], "size": 3, "sparse": False, "label": None}
    return {"request": Resize.wire_name, "fields": {**base, **fields}}


def test_a_request_survives_json_both_ways() -> None:
    sent = Resize(RootFS.overlay(["/l1", "/l2"], "/u", "/w"), ("a", "b"), 3, False)
    wire = json.loads(json.dumps(requests.encode(sent)))
    assert wire == _message()
    received = requests.decode(wire)
    assert received == sent and isinstance(received.paths, tuple)
    assert requests.answer(received) == 6 and answered[-1] == sent


def test_the_wire_name_is_the_module_and_class() -> None:
    assert Resize.wire_name == "tests.idspace.test_requests.Resize"
    assert requests.wire_module(Resize.wire_name) == "tests.idspace.test_requests"


@pytest.mark.parametrize(("fields", "error"), [
    ({"size": "3"}, "Resize.size: expected int, got str"),
    ({"size": True}, "Resize.size: expected int, got bool"),
    ({"sparse": 1}, "Resize.sparse: expected bool, got int"),
    ({"paths": "a"}, "Resize.paths: expected a list, got str"),
    ({"paths": ["a", 2]}, "Resize.paths[1]: expected str, got int"),
    ({"label": 5}, "Resize.label: expected str | None, got int"),
    ({"root": "/"}, "Resize.root: expected an object of fields, got str"),
    ({"root": {"lowers": ["/"], "upper": 1, "work": None}},
     "Resize.root.upper: expected str | None, got int"),
    ({"root": {"lowers": ["/"]}}, "Resize.root: missing field upper, work"),
    ({"extra": 1}, "Resize: unexpected field extra"),
])
def test_fields_not_as_declared_are_refused(fields: dict[str, object], error: str) -> None:
    count = len(answered)
    with pytest.raises(RequestError) as info:
        requests.answer(requests.decode(_message(**fields)))
    assert info.value.message == error
    assert len(answered) == count  # no handler ran


def test_a_missing_field_is_refused() -> None:
    message = _message()
    del message["fields"]["sparse"]  # type: ignore[attr-defined]
    with pytest.raises(RequestError, match="^Resize: missing field sparse$"):
        requests.decode(message)


@pytest.mark.parametrize("message", [
    {"request": "os.getcwd", "fields": {}},
    {"request": "ocibuild.idspace.userns.remove_local", "fields": {"path": "/"}},
    {"request": Unanswered.wire_name, "fields": {"path": "/"}},  # no handler here
    {"request": ["x"], "fields": {}},
])
def test_unknown_requests_are_refused(message: dict[str, object]) -> None:
    with pytest.raises(RequestError, match="^unknown request "):
        requests.decode(message)


@pytest.mark.parametrize("message", [None, [], {"request": Resize.wire_name},
                                     {**_message(), "more": 1}])
def test_a_message_that_is_no_request_is_refused(message: object) -> None:
    with pytest.raises(RequestError, match="^not a request"):
        requests.decode(message)


def test_a_field_of_an_undeclared_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="cannot be of type dict"):
        @request_type
        class Loose(Request[None]):
            options: dict


def test_root_filesystem_kinds() -> None:
    assert RootFS.directory("/r").is_directory and str(RootFS.directory("/r").path) == "/r"
    assert not RootFS.stack(["/a", "/b"]).is_directory
    overlay = RootFS.overlay(["/a"], "/u", "/w")
    assert not overlay.is_directory and overlay.upper == "/u"
    with pytest.raises(ValueError, match="not a plain directory"):
        overlay.path  # noqa: B018
