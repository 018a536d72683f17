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
