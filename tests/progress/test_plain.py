from __future__ import annotations

import io

from ocibuild.progress import Event, PlainRenderer


def test_plain_format_matches_buildkit() -> None:
    out = io.StringIO()
    r = PlainRenderer(out)
    r(Event("started", 3, "[stage-a 2/3] RUN echo a", time=10.0))
    r(Event("log", 3, "[stage-a 2/3] RUN echo a", time=10.123, text="a"))
    r(Event("done", 3, "[stage-a 2/3] RUN echo a", time=10.4))
    r(Event("cached", 4, "[stage-b 2/3] RUN echo b", time=10.5))
    assert out.getvalue() == (
        "#3 [stage-a 2/3] RUN echo a\n"
        "#3 0.123 a\n"
        "#3 DONE 0.4s\n"
        "\n"
        "#4 [stage-b 2/3] RUN echo b\n"
        "#4 CACHED\n"
    )


def test_failure_summary_has_the_last_output_lines() -> None:
    out = io.StringIO()
    r = PlainRenderer(out)
    r(Event("started", 1, "[a 2/2] RUN false", time=0.0))
    for i in range(15):
        r(Event("log", 1, "[a 2/2] RUN false", time=0.1, text=f"line {i}"))
    r(Event("failed", 1, "[a 2/2] RUN false", time=0.2,
            text='process "/bin/sh -c false" did not complete successfully: exit code: 1'))
    assert "#1 ERROR: process \"/bin/sh -c false\" did not complete successfully: exit code: 1" \
        in out.getvalue()
    summary = r.summary()
    assert " > [a 2/2] RUN false:" in summary
    assert "line 14" in summary and "line 5" in summary and "line 4" not in summary


def test_statuses_print_as_buildkit_with_its_throttle() -> None:
    """A blob's status: its bytes (BuildKit's decimal units) and time since it started,
    printed again only after 5% of its size (or 5 s), and always when it completes."""
    out = io.StringIO()
    r = PlainRenderer(out)
    blob = "sha256:" + "ab" * 32
    name = "[1/2] FROM docker.io/library/busybox:latest"
    r(Event("started", 2, name, time=1.0))
    for t, current in ((1.0, 0), (1.6, 12_580_000), (1.7, 12_600_000), (7.0, 12_700_000),
                       (2.2, 45_060_000)):
        r(Event("status", 2, name, time=t, text=blob, current=current, total=45_060_000,
                started=1.0, completed=current == 45_060_000))
    r(Event("status", 2, name, time=2.2, text="resolve x", started=2.2, completed=True))
    r(Event("status", 2, name, time=2.2, text="sha256:cf", current=581, total=581,
            started=2.1, completed=True))
    assert out.getvalue().splitlines()[1:] == [
        f"#2 {blob} 0B / 45.06MB",
        f"#2 {blob} 12.58MB / 45.06MB 0.6s",
        f"#2 {blob} 12.70MB / 45.06MB 6.0s",  # (12.60MB moved too little, too soon)
        f"#2 {blob} 45.06MB / 45.06MB 1.2s done",
        "#2 resolve x done",
        "#2 sha256:cf 581B / 581B 0.1s done",
    ]
