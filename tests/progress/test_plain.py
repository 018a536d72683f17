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
