"""A `--push` build's rebuild memo asks each registry whether every name it pushed
still holds that image (rebuild_memo.replay), as the engine's own push of an image
already there asks (the same scope, credentials and request).

The question is asked by a forked child, started before the walk of the context, so
that the registry client's imports (~15 ms of CPU) and the requests overlap the walk
instead of following it. The command is still single-threaded then; the child only
imports, asks and writes one byte. The walk keeps both cores busy, so every
millisecond the child spends is half a millisecond of the command's: its path loads
neither typing nor dataclasses (tests/registry/test_lazy_import.py), and the memo holds
each pushed name already parsed, so that no Reference is made.
"""

from __future__ import annotations

from ocibuild.forked_call import ForkedCall

TYPE_CHECKING = False  # typing would cost the memo's path ~8 ms
if TYPE_CHECKING:
    from collections.abc import Sequence

_YES, _NO = b"y", b"n"


def registries_hold(registry: Sequence[tuple[str, str]],
                    pushed: Sequence[Sequence[str]]) -> bool:
    """Whether every name in `pushed` ([registry, repository, tag, digest] each) still
    holds that digest in its registry, reached with the registry flags `registry`
    ((option, value) pairs). Any failure is a no: the engine then pushes, and reports
    it."""
    try:
        from ocibuild.registry.client import ClientPool, push_scope
        from ocibuild.registry.options import RegistryOptions

        flags: dict[str, list[str]] = {}
        for option, value in registry:
            flags.setdefault(option, []).append(value)
        timeout = flags.get("--registry-timeout")
        options = RegistryOptions.build(
            insecure=flags.get("--insecure-registry", ()),
            ca_files=flags.get("--registry-ca", ()),
            authfile=flags.get("--authfile", [None])[-1],
            timeout=float(timeout[-1]) if timeout else None)
        pool = ClientPool(options)
        try:
            for host, repository, tag, digest in pushed:
                client = pool.get(host)
                client.skip_ping()  # one request where no credentials are asked for
                held = client.manifest_exists(repository, tag or digest,
                                              f"push {host}/{repository}",
                                              [push_scope(repository)])
                if not digest or held != digest:
                    return False
        finally:
            pool.close()
    except Exception:  # noqa: BLE001 - the memo is a shortcut; the engine reports it
        return False
    return True


class Question:
    """registries_hold() being answered in a forked child."""

    def __init__(self, child: ForkedCall, registry: tuple[tuple[str, str], ...],
                 pushed: list[list[str]]) -> None:
        self._child, self.registry, self.pushed = child, registry, pushed

    @classmethod
    def ask(cls, memo: dict, registry: tuple[tuple[str, str], ...]) -> Question | None:
        """Start asking about the names `memo` (a rebuild memo, as read) pushed; None
        where there is nothing to ask or no child can be had."""
        pushed = memo.get("pushed")
        if not pushed or not isinstance(pushed, list):
            return None
        child = ForkedCall.start(lambda: _YES if registries_hold(registry, pushed) else _NO)
        return None if child is None else cls(child, registry, pushed)

    def answer(self, pushed: list[list[str]]) -> bool:
        """The child's answer, if it asked about `pushed`; otherwise asked here."""
        if pushed != self.pushed:
            self.drop()
            return registries_hold(self.registry, pushed)
        return self._child.result() == _YES

    def drop(self) -> None:
        """End the child, answered or not."""
        self._child.drop()
