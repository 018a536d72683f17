"""How a build fails: for people, with the right exit status."""

from __future__ import annotations

from tests.build.conftest import Builder, write_context


def test_failing_run_ends_with_command_exit_code_and_last_output(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        "RUN for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo out-$i; done; "
        "echo to-stderr >&2; exit 3\n"
        "RUN echo never-runs\n")}, builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode == 1
    tail = proc.stderr.rstrip().splitlines()[-16:]
    text = "\n".join(tail)
    assert "exit code: 3" in tail[-1]
    assert "echo to-stderr >&2; exit 3" in tail[-1]
    assert "out-12" in text and "to-stderr" in text
    assert "out-1\n" not in text + "\n"  # only the last lines
    assert "[3/3] RUN echo never-runs" not in proc.stderr


def test_misspelt_flag_is_reported_with_its_position(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\n\nCOPY --chwon=1:1 a.txt /a\n", "a.txt": "a"},
        builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode != 0
    assert "Dockerfile:3:6: unknown flag: --chwon" in proc.stderr
    assert "did you mean --chown?" in proc.stderr


def test_mistakes_in_a_stage_the_target_does_not_need_still_fail(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest AS unused\nRUN --mout=type=cache,target=/c true\n"
        "FROM busybox:latest\nRUN true\n")}, builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode != 0
    assert "Dockerfile:2:5: unknown flag: --mout" in proc.stderr


def test_exec_form_run_finds_a_bare_command_on_path(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        'RUN ["sh", "-c", "echo exec-form > /out"]\n'
        'RUN ["test", "-s", "/out"]\n')}, builder.user)
    builder.build(ctx)


def test_a_context_entry_the_user_cannot_read_fails_the_copy_by_name(
        builder: Builder) -> None:
    """As docker does ("error from sender: open ...: permission denied"), instead of a
    traceback, or an image silently missing a directory's content."""
    import os

    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nCOPY . /ctx/\n", "ok.txt": "ok",
        "locked-file": "secret", "locked-dir/inside.txt": "inside",
        "db-data/row": "row"}, builder.user)
    os.chmod(ctx / "db-data", 0)  # excluded below: never read, so no error
    (ctx / ".dockerignore").write_text("db-data\n")
    for entry, mode in (("locked-file", 0), ("locked-dir", 0)):
        os.chmod(ctx / entry, mode)
        proc, _ = builder.build(ctx, check=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.rstrip().splitlines()[-1] == (
            f"ocibuild: error: [2/2] COPY . /ctx/: cannot read {entry} in the build "
            "context: permission denied"), proc.stderr
        assert "Traceback" not in proc.stderr
        os.chmod(ctx / entry, 0o755)
    builder.build(ctx)  # readable again; the excluded, unreadable db-data is skipped


def test_a_copy_from_a_stage_that_fails_names_the_step(builder: Builder) -> None:
    """A symlink in the stage that points outside its root resolves inside it (to
    nothing here): the error names the step and the path as written."""
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest AS s\nRUN ln -s /etc/no-such-file /s\n"
        "FROM busybox:latest\nCOPY --from=s /s /y\n")}, builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode == 1
    assert proc.stderr.rstrip().splitlines()[-1] == \
        "ocibuild: error: [stage-1 2/2] COPY --from=s /s /y: /s: not found", proc.stderr


def test_a_failure_cancels_the_parallel_steps_and_reports_only_itself(
        builder: Builder) -> None:
    from tests.build.conftest import step_states

    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest AS slow\nRUN sleep 30\n"
        "FROM busybox:latest AS bad\nRUN sleep 1; echo failing; exit 4\n"
        "FROM busybox:latest\nCOPY --from=slow / /slow\nCOPY --from=bad / /bad\n")},
        builder.user)
    proc, took = builder.build(ctx, check=False)
    assert proc.returncode == 1 and took < 20, proc.stderr
    states = step_states(proc.stderr)
    assert states["[slow 2/2] RUN sleep 30"] == "CANCELED", proc.stderr
    assert states["[bad 2/2] RUN sleep 1; echo failing; exit 4"] == "ERROR"
    assert proc.stderr.count("------\n > ") == 1 and "failing" in proc.stderr
