"""The system's CAs over TLS: OpenSSL's CA directory is read a certificate at a time, as a
chain needs it, and the CA bundle file (parsed whole: ~20 ms of every TLS command) only
for a chain the directory alone does not verify. Which CAs are trusted does not change: a CA
found in either of OpenSSL's default places verifies the registry, one in neither does
not, with the same message as before. The "system" places here are SSL_CERT_DIR and
SSL_CERT_FILE, which OpenSSL reads instead of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO
from tests.support.registry_server import RegistryServer, make_certs

# asks the registry for its API version over TLS with the default options (no
# --registry-ca, no certs.d entry for it); prints the outcome, then how many
# certificates the first context held when it was made and whether a second (every
# system CA) was made
ASK = r"""
import sys
from ocibuild.registry import RegistryClient, RegistryOptions, RegistryError
from ocibuild.registry import options as options_module
if len(sys.argv) > 2:  # the directory to try first, whatever the environment says
    options_module._system_ca_directory = lambda: sys.argv[2]
made = []
real = options_module.ssl_context
def counting(*args, **kwargs):
    ctx = real(*args, **kwargs)
    made.append((kwargs.get("every_system_ca", False), ctx.cert_store_stats()["x509"]))
    return ctx
import ocibuild.registry.client as client_module
client_module.ssl_context = counting
client = RegistryClient(sys.argv[1], RegistryOptions(certs_dirs=()))
try:
    client.check_credentials("test")
    print("verified")
except RegistryError as exc:
    print("refused:", exc.message)
print(made)
"""


def _ask(registry: RegistryServer, env: dict[str, str], *first_directory: str
         ) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-c", ASK, registry.host, *first_directory],
                          capture_output=True, text=True, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env})
    assert proc.returncode == 0, proc.stderr
    outcome, made = proc.stdout.strip().splitlines()
    return outcome, made


def _ca_directory(directory: Path, *cas: Path) -> Path:
    """An OpenSSL CA directory: each CA under its subject's hash name."""
    directory.mkdir()
    for ca in cas:
        digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(ca)],
                                check=True, capture_output=True, text=True).stdout.strip()
        shutil.copy(ca, directory / f"{digest}.0")
    return directory


def test_a_ca_in_the_directory_verifies_with_no_certificate_loaded_up_front(
        tls_registry: RegistryServer, tmp_path: Path) -> None:
    assert tls_registry.certs is not None
    directory = _ca_directory(tmp_path / "certs", tls_registry.certs.ca_cert)
    outcome, made = _ask(tls_registry, {"SSL_CERT_DIR": str(directory)})
    assert outcome == "verified"
    assert made == "[(False, 0)]"  # no bundle parsed, no second context


def test_a_ca_only_in_the_bundle_verifies_through_the_second_context(
        tls_registry: RegistryServer, tmp_path: Path) -> None:
    # the directory tried first holds another CA; the bundle (SSL_CERT_FILE) the registry's
    assert tls_registry.certs is not None
    other = make_certs(tmp_path / "other")
    directory = _ca_directory(tmp_path / "certs", other.ca_cert)
    outcome, made = _ask(tls_registry, {"SSL_CERT_FILE": str(tls_registry.certs.ca_cert),
                                        "SSL_CERT_DIR": str(directory)}, str(directory))
    assert outcome == "verified"
    assert made == "[(False, 0), (True, 1)]"


def test_a_named_bundle_is_trusted_from_the_start(tls_registry: RegistryServer,
                                                  tmp_path: Path) -> None:
    assert tls_registry.certs is not None
    directory = _ca_directory(tmp_path / "certs", make_certs(tmp_path / "other").ca_cert)
    outcome, made = _ask(tls_registry, {"SSL_CERT_FILE": str(tls_registry.certs.ca_cert),
                                        "SSL_CERT_DIR": str(directory)})
    assert outcome == "verified"
    assert made == "[(False, 1)]"


def test_a_ca_in_neither_place_is_refused_as_before(tls_registry: RegistryServer,
                                                    tmp_path: Path) -> None:
    directory = _ca_directory(tmp_path / "certs", make_certs(tmp_path / "other").ca_cert)
    outcome, made = _ask(tls_registry, {"SSL_CERT_DIR": str(directory),
                                        "SSL_CERT_FILE": str(tmp_path / "none.pem")},
                         str(directory))
    assert outcome.startswith("refused:") and "certificate verify failed" in outcome
    assert "--registry-ca" in outcome
    assert made == "[(False, 0), (True, 0)]"
