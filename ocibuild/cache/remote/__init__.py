"""Remote cache: `--cache-to` / `--cache-from` with registries and OCI layout directories.

`BuildCaches` is what a build uses: it reads every --cache-from before the solve (the
records, never the layers) and writes every --cache-to after it. The format is in
`format` and docs/cache-format.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ocibuild.cache.records import CacheRecord
from ocibuild.cache.remote.lookup import BlobSource, RemoteHit, RemoteRecords
from ocibuild.cache.remote.spec import CacheSpec, parse_cache_spec
from ocibuild.errors import OcibuildError, os_error

if TYPE_CHECKING:
    from ocibuild.cache.remote.exporter import CacheExportReport
    from ocibuild.cache.store import Store
    from ocibuild.registry.client import ClientPool
    from ocibuild.signing.keys import PublicKey, SigningKey

class BuildCaches:
    """The remote caches of one build."""

    def __init__(self, store: Store, cache_from: Sequence[str], cache_to: Sequence[str],
                 registry_options: Any = None) -> None:
        self.store = store
        self.imports = [parse_cache_spec(t, export=False) for t in cache_from]
        self.exports = [parse_cache_spec(t, export=True) for t in cache_to]
        # keys are read before the build, so that a wrong passphrase costs nothing
        self.verify_keys = [_public_key(s) for s in self.imports]
        self.sign_keys = [_signing_key(s) for s in self.exports]
        self.warnings: list[str] = []
        self.remote: RemoteRecords | None = None
        self._options = registry_options
        self._clients: ClientPool | None = None

    def clients(self) -> ClientPool:
        if self._clients is None:
            from ocibuild.registry.client import ClientPool

            self._clients = ClientPool(self._options)
        return self._clients

    def load(self, key_version: str) -> RemoteRecords | None:
        """Read every --cache-from (a cache that cannot be read is a warning)."""
        if self.imports:
            from ocibuild.cache.remote.importer import load_caches

            needs_registry = any(s.type == "registry" for s in self.imports)
            self.remote = load_caches(self.imports, self.store,
                                      self.clients() if needs_registry else None,
                                      key_version, self.warnings, self.verify_keys)
        return self.remote

    def export(self, records_for: Callable[[str], list[CacheRecord]],
               key_version: str) -> list[CacheExportReport]:
        """Write every --cache-to; `records_for(mode)` gives the records to write."""
        if not self.exports:
            return []
        from ocibuild.cache.remote.exporter import export_cache

        reports = []
        for spec, sign_key in zip(self.exports, self.sign_keys, strict=True):
            try:
                reports.append(export_cache(
                    spec, self.store, records_for(spec.mode), self.remote,
                    self.clients() if spec.type == "registry" else None, key_version,
                    sign_key))
            except (OcibuildError, OSError) as exc:
                message = exc.message if isinstance(exc, OcibuildError) \
                    else os_error(exc, "cannot write").message
                if not spec.ignore_error:
                    raise OcibuildError(f"--cache-to {spec}: {message}") from None
                self.warnings.append(f"--cache-to {spec}: not written: {message}")
        return reports

    def close(self) -> None:
        if self._clients is not None:
            self._clients.close()


def _public_key(spec: CacheSpec) -> PublicKey | None:
    if not spec.verify_key:
        return None
    from ocibuild.signing.keys import load_public_key

    return load_public_key(spec.verify_key)


def _signing_key(spec: CacheSpec) -> SigningKey | None:
    if not spec.sign_key:
        return None
    from ocibuild.signing import keys

    return keys.load_signing_key(spec.sign_key,
                                 keys.ask_passphrase(f"passphrase for {spec.sign_key}"))


__all__ = ["BlobSource", "BuildCaches", "CacheSpec", "RemoteHit", "RemoteRecords",
           "parse_cache_spec"]
