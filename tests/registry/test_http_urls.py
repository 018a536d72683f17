"""The HTTP client's own split of a URL into the origin it connects to and the request
target it sends: the same answer as urllib's urlsplit for every absolute http(s) URL,
and a refusal (never a request) for one with whitespace or control characters, another
scheme, no host or a bad port (a Location header is the registry's text)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from ocibuild.registry.http import ConnectError, _split

AGREES = [
    "http://127.0.0.1:5000/v2/",
    "https://registry.example/v2/team/app/manifests/1",
    "HTTPS://Registry.Example:443/v2/?x=1",
    "http://localhost",
    "http://localhost:",
    "http://host?query=1&b=2",
    "http://host/path?q#fragment",
    "http://host#fragment",
    "https://user:secret@host:8443/token?service=r&scope=repository:a:pull",
    "http://[::1]:5000/v2/",
    "https://[2001:DB8::1]/v2/",
    "http://host:0/",
    "https://storage.example/blobs/sha256:ab?X-Amz-Signature=%2Fz&a=%20",
    "http://hôst.example/ü",
]


@pytest.mark.parametrize("url", AGREES)
def test_the_origin_and_target_are_urlsplits(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}[parts.scheme]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    assert _split(url) == ((parts.scheme, parts.hostname, port), target)


@pytest.mark.parametrize("url", [
    "ftp://host/file",
    "host:5000/v2/",
    "//host/v2/",
    "http:///v2/",
    "http://user@/v2/",
    "http://[::1/v2/",
    "http://[::1]x/v2/",
    "http://host/a b",
    "http://host/a\tb",
    "http://host/a\r\nHost: evil",
    " http://host/",
    "http://host/\x00",
])
def test_a_url_that_is_not_plainly_http_is_refused(url: str) -> None:
    with pytest.raises(ConnectError, match="not an http"):
        _split(url)


@pytest.mark.parametrize("url", ["http://host:65536/", "http://host:5x/", "http://a:b:c/",
                                 "http://host:-1/", "http://host:٣/"])
def test_a_bad_port_is_refused(url: str) -> None:
    with pytest.raises(ConnectError, match="bad port"):
        _split(url)
