"""Provenance made from a build graph and what the solver found (as plain values): what
each mode states (min leaves out build args, labels, secrets and ssh ids and says the
request is incomplete), every kind of dependency with its digest (images as purls, git
commits, downloads, the Dockerfile and each local context), and the flags' parsing.
The statements validate against the in-toto statement schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ocibuild.attest import statements_for
from ocibuild.attest.capture import BuildRequest, build_facts, frontend_args
from ocibuild.attest.dpkg import spdx_license
from ocibuild.attest.provenance import provenance
from ocibuild.attestations import AttestRequest, check, requested_attestations
from ocibuild.errors import UsageError
from ocibuild.graph.ops import (
    ContextSource,
    CopyOp,
    ExecOp,
    GitSource,
    HttpSource,
    ImageSource,
    Mount,
    walk,
)
from tests.attest.schema_check import validate_statement

DIGEST = "sha256:" + "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _graph() -> ExecOp:
    base = ImageSource(ref="docker.io/library/alpine:3.19", manifest_digest=DIGEST,
                       platform="linux/amd64")
    app = CopyOp(base, ContextSource(), ("app/",), "/app")
    tools = CopyOp(app, ContextSource(name="tools"), ("bin",), "/tools")
    fetched = CopyOp(tools, HttpSource(url="https://example.org/x.tgz", filename="x.tgz"),
                     ("x.tgz",), "/x.tgz")
    source = CopyOp(fetched, GitSource(remote="https://user:pw@example.org/r.git", ref="v1"),
                    ("/",), "/src")
    return ExecOp(source, ("make",), network="none", mounts=(
        Mount(type="secret", target="/run/secrets/token", id="token"),
        Mount(type="ssh", target="/run/ssh", required=True)))


def _predicate(mode: str) -> dict:
    target = _graph()
    ops = {type(op).__name__: op for op in walk(target)}
    request = BuildRequest(frontend_args({"V": "1"}, {"team": "x"}, "prod"), "Dockerfile",
                           b"FROM alpine\n", datetime(2026, 1, 2, 3, 4, 5, 600000, UTC),
                           "linux/amd64")
    facts = build_facts(
        target, request, http_digests={ops["HttpSource"].digest: "sha256:" + "cd" * 32},
        git_commits={ops["GitSource"].digest: COMMIT},
        context_reads=[("context", "sha256:11"), ("tools", "sha256:22")])
    pred = provenance(facts, mode, builder_id="https://ci.example/run/7",
                      finished=datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC))
    [stmt] = statements_for([pred], DIGEST, ["registry.example/app:1"], "linux/amd64")
    validate_statement(stmt)
    assert stmt["subject"][0]["name"] == "pkg:docker/registry.example/app@1?platform=linux%2Famd64"
    return stmt["predicate"]


def test_max_mode_states_everything_the_build_was_given_and_read() -> None:
    pred = _predicate("max")
    request = pred["buildDefinition"]["externalParameters"]["request"]
    assert request["args"] == {"build-arg:V": "1", "label:team": "x", "target": "prod"}
    assert request["secrets"] == [{"id": "token", "optional": True}]
    assert request["ssh"] == [{"id": "default"}]
    assert request["locals"] == [{"name": "context"}, {"name": "dockerfile"},
                                 {"name": "tools"}]
    deps = pred["buildDefinition"]["resolvedDependencies"]
    assert deps[:3] == [
        {"uri": "pkg:docker/alpine@3.19?platform=linux%2Famd64", "digest": {"sha256": "ab" * 32}},
        {"uri": "https://user:xxxxx@example.org/r.git#v1", "digest": {"sha1": COMMIT}},
        {"uri": "https://example.org/x.tgz", "digest": {"sha256": "cd" * 32}}]
    assert [d["name"] for d in deps[3:]] == ["context", "dockerfile", "tools"]
    run = pred["runDetails"]
    assert run["builder"] == {"id": "https://ci.example/run/7"}
    assert run["metadata"]["startedOn"] == "2026-01-02T03:04:05.6Z"
    assert run["metadata"]["finishedOn"] == "2026-01-02T03:04:09Z"
    assert run["metadata"]["buildkit_completeness"] == {"request": True,
                                                        "resolvedDependencies": False}
    assert run["metadata"]["buildkit_metadata"]["source"]["infos"][0]["filename"] == \
        "Dockerfile"


def test_min_mode_leaves_out_args_secrets_and_ssh() -> None:
    pred = _predicate("min")
    request = pred["buildDefinition"]["externalParameters"]["request"]
    assert request["args"] == {"target": "prod"}
    assert "secrets" not in request and "ssh" not in request
    metadata = pred["runDetails"]["metadata"]
    assert metadata["buildkit_completeness"]["request"] is False
    assert metadata["buildkit_metadata"] == {}


def test_a_git_context_is_the_config_source_and_a_dependency() -> None:
    request = BuildRequest({}, "Dockerfile", b"FROM scratch\n", datetime.now(UTC),
                           "linux/amd64", "https://example.org/app.git#main", COMMIT)
    facts = build_facts(CopyOp(ImageSource(ref="alpine", manifest_digest=DIGEST,
                                           platform="linux/amd64"),
                               ContextSource(), (".",), "/"),
                        request, http_digests={}, git_commits={},
                        context_reads=[("context", "sha256:11")])
    definition = provenance(facts, "min").body["buildDefinition"]
    assert definition["externalParameters"]["configSource"] == {
        "uri": "https://example.org/app.git#main", "digest": {"sha1": COMMIT},
        "path": "Dockerfile"}
    assert "locals" not in definition["externalParameters"]["request"]
    assert definition["resolvedDependencies"][1] == {
        "uri": "https://example.org/app.git#main", "digest": {"sha1": COMMIT}}
    metadata = provenance(facts, "min").body["runDetails"]["metadata"]
    assert metadata["buildkit_completeness"]["resolvedDependencies"] is True


@pytest.mark.parametrize(("flags", "expected"), [
    ((None, None, ()), AttestRequest()),
    (("true", None, ()), AttestRequest(provenance="min")),
    (("mode=max,builder-id=https://b", "1", ()),
     AttestRequest(provenance="max", sbom=True, builder_id="https://b")),
    (("false", "false", ()), AttestRequest()),
    ((None, None, ("type=sbom", "type=sbom,disabled=true")), AttestRequest()),
    ((None, None, ("type=provenance,mode=full", "type=sbom,generator=img")),
     AttestRequest(provenance="max", sbom=True)),
])
def test_the_flags_amount_to_a_request(flags, expected) -> None:
    assert check(requested_attestations(*flags)) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("mode=fast", "mode='fast' is not min or max"),
    ("version=v0.2", "version=v0.2 is not made; ocibuild writes SLSA provenance v1"),
])
def test_a_bad_provenance_value_is_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check(requested_attestations(value, None, ()))


@pytest.mark.parametrize(("names", "expression"), [
    (["GPL-2+", "Expat"], "GPL-2.0-or-later AND MIT"),
    (["Artistic or GPL-1+"], "Artistic-1.0-Perl OR GPL-1.0-or-later"),
    (["LGPL-2.1", "CC-BY-SA-3.0 or GPL-3"], "LGPL-2.1-only AND (CC-BY-SA-3.0 OR GPL-3.0-only)"),
    (["GPL-2+ with OpenSSL exception"], "LicenseRef-GPL-2-with-OpenSSL-exception"),
    (["public-domain"], ""),
])
def test_debian_license_names_become_spdx_expressions(names, expression) -> None:
    assert spdx_license(names) == expression
