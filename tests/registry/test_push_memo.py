"""A cached `build --push` answered by the rebuild memo: the registry is asked what
each pushed name holds (the engine's own push again asks the same, after a ping the
memo leaves out where the scheme is known: a registry that wants credentials says so in
its answer), and the memo answers only when every name still holds the image;
otherwise the engine runs, pushes and reports."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from ocibuild.registry import RegistryOptions, push_names
from tests.build.conftest import image_digest, step_states, write_context
from tests.registry.conftest import BaseImages
from tests.registry.test_build_integration import build, user_flags
from tests.support.memo import memo_answers
from tests.support.registry_server import PASSWORD, USER, Proxy, RegistryServer
from tests.support.users import User


def _context(user: User, tmp: Path, text: str) -> Path:
    return write_context(tmp / "ctx", {"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": text},
                         user)


def test_a_cached_build_push_is_answered_after_one_question(
        proxy: Proxy, sub_user: User, sub_tmp: Path) -> None:
    ref = f"{proxy.host}/memo-push/app:1"
    flags: list[str | Path] = ["-t", ref, "--push", "--insecure-registry", proxy.host,
                               _context(sub_user, sub_tmp, "memo\n")]
    first = build(sub_user, sub_tmp, *flags)
    digest = image_digest(first.stderr)
    assert "DONE" in step_states(first.stderr).values()

    proxy.reset()
    assert memo_answers(sub_user, sub_tmp / "store", ["--progress", "plain", *flags], sub_tmp)
    assert [(s.method, s.path) for s in proxy.seen] == [
        ("HEAD", "/v2/memo-push/app/manifests/1")]

    # what it prints is what the engine prints for the same cached build --push
    answered = build(sub_user, sub_tmp, *flags)
    shutil.rmtree(sub_tmp / "store" / "rebuilds")
    engine = build(sub_user, sub_tmp, *flags)
    assert set(step_states(engine.stderr).values()) == {"CACHED"}
    assert answered.stderr == engine.stderr
    assert answered.stdout == engine.stdout == first.stdout
    assert f"pushed {ref}@{digest}" in answered.stderr


def test_a_tag_moved_in_the_registry_makes_the_engine_push_again(
        proxy: Proxy, images: BaseImages, sub_user: User, sub_tmp: Path) -> None:
    ref = f"{proxy.host}/memo-moved/app:1"
    flags: list[str | Path] = ["-t", ref, "--push", "--insecure-registry", proxy.host,
                               _context(sub_user, sub_tmp, "moved\n")]
    digest = image_digest(build(sub_user, sub_tmp, *flags).stderr)
    assert memo_answers(sub_user, sub_tmp / "store", ["--progress", "plain", *flags], sub_tmp)

    # someone else pushes another image under the same name
    push_names(images.layout, images.base, [ref],
               options=RegistryOptions.build(insecure=[proxy.host]))
    assert not memo_answers(sub_user, sub_tmp / "store", ["--progress", "plain", *flags],
                            sub_tmp)
    proxy.reset()
    again = build(sub_user, sub_tmp, *flags)
    assert set(step_states(again.stderr).values()) == {"CACHED"}
    assert f"pushed {ref}@{digest}" in again.stderr
    assert [s.path for s in proxy.requests("PUT", "/manifests/")] == [
        "/v2/memo-moved/app/manifests/1"]
    # the engine's push left a memo again, which the registry now agrees with; it prints
    # what a push finding everything there prints, not the manifest put just made
    assert memo_answers(sub_user, sub_tmp / "store", ["--progress", "plain", *flags], sub_tmp)
    answered = build(sub_user, sub_tmp, *flags)
    shutil.rmtree(sub_tmp / "store" / "rebuilds")
    proxy.reset()
    engine = build(sub_user, sub_tmp, *flags)
    assert proxy.requests("PUT", "/manifests/") == []
    assert answered.stderr == engine.stderr


def test_an_unreachable_registry_is_reported_not_answered(
        http_registry: RegistryServer, sub_user: User, sub_tmp: Path) -> None:
    proxy = Proxy(http_registry.port)
    ref = f"{proxy.host}/memo-gone/app:1"
    flags: list[str | Path] = ["-t", ref, "--push", "--insecure-registry", proxy.host,
                               _context(sub_user, sub_tmp, "gone\n")]
    try:
        build(sub_user, sub_tmp, *flags)
        build(sub_user, sub_tmp, *flags)
        assert (sub_tmp / "store" / "rebuilds").is_dir()
    finally:
        proxy.close()
    failed = build(sub_user, sub_tmp, *flags, check=False)
    assert failed.returncode != 0
    assert f"cannot reach {proxy.host}" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr


def test_the_memo_asks_a_token_registry_with_the_build_credentials(
        token_registry: RegistryServer, sub_user: User, sub_tmp: Path) -> None:
    ref = f"{token_registry.host}/memo-token/app:1"
    flags: list[str | Path] = ["-t", ref, "--push",
                               *user_flags(token_registry, sub_tmp, sub_user),
                               _context(sub_user, sub_tmp, "token\n")]
    digest = image_digest(build(sub_user, sub_tmp, *flags).stderr)
    assert memo_answers(sub_user, sub_tmp / "store", ["--progress", "plain", *flags], sub_tmp)
    # with a wrong password the token server refuses: no answer, and the engine says why
    shutil.copy(sub_tmp / "auth.json", sub_tmp / "auth.json.kept")
    wrong = base64.b64encode(f"{USER}:not-{PASSWORD}".encode()).decode()
    (sub_tmp / "auth.json").write_text(json.dumps({"auths": {token_registry.host: {
        "auth": wrong}}}))
    assert not memo_answers(sub_user, sub_tmp / "store", ["--progress", "plain", *flags],
                            sub_tmp)
    refused = build(sub_user, sub_tmp, *flags, check=False)
    assert refused.returncode != 0 and "401" in refused.stderr, refused.stderr
    shutil.copy(sub_tmp / "auth.json.kept", sub_tmp / "auth.json")
    again = build(sub_user, sub_tmp, *flags)
    assert f"pushed {ref}@{digest}" in again.stderr


def test_a_changed_context_is_built_and_pushed_though_the_registry_was_asked(
        proxy: Proxy, sub_user: User, sub_tmp: Path) -> None:
    """The registry is asked while the context is walked, before the memo knows whether
    the context changed (the question is dropped then): a change still makes the engine
    build and push."""
    ref = f"{proxy.host}/memo-changed/app:1"
    ctx = _context(sub_user, sub_tmp, "before\n")
    flags: list[str | Path] = ["-t", ref, "--push", "--insecure-registry", proxy.host, ctx]
    first = image_digest(build(sub_user, sub_tmp, *flags).stderr)
    assert memo_answers(sub_user, sub_tmp / "store", ["--progress", "plain", *flags], sub_tmp)

    (ctx / "a").write_text("after!\n")
    assert not memo_answers(sub_user, sub_tmp / "store", ["--progress", "plain", *flags],
                            sub_tmp)
    after = build(sub_user, sub_tmp, *flags)
    assert "DONE" in step_states(after.stderr).values()
    assert image_digest(after.stderr) != first
    assert f"pushed {ref}@{image_digest(after.stderr)}" in after.stderr
