"""The registry package loads the HTTP client only when something needs the network:
every build parses its --build-context values through it, and the HTTP client (with
socket, and ssl for https) is ~5-10 ms of a cached build's start-up."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_build_context_parsing_does_not_load_the_http_client() -> None:
    out = _run(
        "import sys\n"
        "from ocibuild.registry import BuildContext, RegistryOptions, parse_build_context\n"
        "ctx = parse_build_context('base=docker-image://alpine:3.19')\n"
        "assert ctx.is_image and isinstance(ctx, BuildContext)\n"
        "print(sorted(m for m in ('ocibuild.registry.http', 'ssl', 'http.client') "
        "if m in sys.modules))\n")
    assert out == "[]"


def test_pull_is_the_function_even_after_its_module_was_imported() -> None:
    out = _run(
        "import ocibuild.registry.pull, ocibuild.registry.resolve\n"
        "from ocibuild.registry import pull, PullStats\n"
        "import ocibuild.registry as r\n"
        "print(callable(pull), pull is r.pull, pull.__module__, 'pull' in dir(r))\n")
    assert out == "True True ocibuild.registry.pull True"


def test_a_plain_http_registry_never_loads_ssl() -> None:
    """TLS (ssl, and the system CA store it reads) is for https registries alone."""
    from tests.support.fault_registry import FaultRegistry

    with FaultRegistry() as registry:
        out = _run(
            "import sys\n"
            "from ocibuild.registry import RegistryClient, RegistryOptions\n"
            f"options = RegistryOptions.build(insecure=[{registry.host!r}])\n"
            f"client = RegistryClient({registry.host!r}, options)\n"
            "client.check_credentials('test')\n"
            "print(client.base_url, 'ssl' in sys.modules, 'http.client' in sys.modules)\n")
    assert out == f"http://{registry.host} False False"


def test_the_rebuild_memos_registry_question_loads_neither_typing_nor_dataclasses() -> None:
    """A cached `build --push` answered by the rebuild memo asks the registry while it
    walks the context, on the same two cores: typing and dataclasses (with inspect) were
    ~8 ms of that question's ~25 ms of CPU, json ~1.4 ms more (a registry without auth
    sends nothing the question parses as JSON, and needs no base64), pathlib and
    urllib.parse (with re and ipaddress) ~4 ms (no path is given, nothing is redirected)."""
    from tests.support.fault_registry import FaultRegistry

    with FaultRegistry() as registry:
        digest = registry.add_manifest("team/app", "1", b"{}")
        pushed = [[registry.host, "team/app", "1", digest]]
        moved = [[registry.host, "team/app", "1", "sha256:" + 64 * "0"]]
        out = _run(
            "import sys\n"
            "from ocibuild import memo_push\n"
            f"flags = [('--insecure-registry', {registry.host!r})]\n"
            f"held = memo_push.registries_hold(flags, {pushed!r})\n"
            f"moved = memo_push.registries_hold(flags, {moved!r})\n"
            "print(held, moved, sorted(m for m in ('typing', 'dataclasses', 'inspect', 'json',"
            " 'base64', 'pathlib', 'urllib.parse', 're', 'ipaddress', 'importlib')"
            " if m in sys.modules))\n")
    assert out == "True False []"
