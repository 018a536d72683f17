"""A `--push` build's rebuild memo asks each registry whether every name it pushed
still holds that image (rebuild_memo.replay), as the engine's own push of an image
already there asks (the same scope, credentials and request).

The question is asked by a forked child, started before the walk of the context, so
that the registry client's imports (~40 ms) and the requests overlap the walk instead of
following it. The command is still single-threaded then; the child only imports, asks
and writes one byte.
"""

from __future__ import annotations

import marshal

from ocibuild.forked_call import ForkedCall

TYPE_CHECKING = False  # typing would cost the memo's path ~8 ms
if TYPE_CHECKING:
    from collections.abc import Sequence

_YES, _NO = b"y", b"n"


def registries_hold(registry: Sequence[tuple[str, str]], pushed: Sequence[str]) -> bool:
    """Whether every name@digest in `pushed` still holds that digest in its registry,
    reached with the registry flags `registry` ((option, value) pairs). Any failure is a
    no: the engine then pushes, and reports it."""
    try:
        from ocibuild.registry import ClientPool, RegistryOptions, parse_reference
        from ocibuild.registry.client import push_scope

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
            for name in pushed:
                ref = parse_reference(name)
                client = pool.get(ref.registry)
                scopes = [push_scope(ref.repository)]
                held = client.manifest_exists(ref.repository, ref.tag or ref.digest,
                                              f"push {name}", scopes)
                if not ref.digest or held != ref.digest:
                    return False
        finally:
            pool.close()
    except Exception:  # noqa: BLE001 - the memo is a shortcut; the engine reports it
        return False
    return True


class Question:
    """registries_hold() being answered in a forked child."""

    def __init__(self, child: ForkedCall, registry: tuple[tuple[str, str], ...],
                 memo: dict) -> None:
        self._child, self.registry = child, registry
        self.memo = memo  # the memo the question comes from, as read (replay uses it)
        self.pushed: list[str] = memo["pushed"]

    @classmethod
    def ask(cls, memo_path: str, version: int,
            registry: tuple[tuple[str, str], ...]) -> Question | None:
        """Start asking about the names the memo at `memo_path` pushed; None where there
        is nothing to ask (no such memo, another version's, nothing pushed) or no
        child can be had."""
        try:
            with open(memo_path, "rb") as f:
                memo = marshal.load(f)
            pushed = memo.get("pushed") if memo.get("v") == version else None
        except (OSError, ValueError, EOFError, AttributeError):
            return None
        if not pushed or not isinstance(pushed, list):
            return None
        child = ForkedCall.start(lambda: _YES if registries_hold(registry, pushed) else _NO)
        return None if child is None else cls(child, registry, memo)

    def answer(self, pushed: list[str]) -> bool:
        """The child's answer, if it asked about `pushed`; otherwise asked here."""
        if pushed != self.pushed:
            self.drop()
            return registries_hold(self.registry, pushed)
        return self._child.result() == _YES

    def drop(self) -> None:
        """End the child, answered or not."""
        self._child.drop()
