"""BuildKit's machine-readable progress (`--progress=rawjson`): one JSON object per line,
each shaped like a BuildKit SolveStatus update, for example

    {"vertexes":[{"digest":"sha256:…","name":"[a 2/2] RUN make","started":"…Z"}]}
    {"logs":[{"vertex":"sha256:…","stream":1,"data":"bWFrZQo=","timestamp":"…Z"}]}
    {"vertexes":[{"digest":"sha256:…","name":"[a 2/2] RUN make","started":"…Z","completed":"…Z"}]}

and a transfer's progress as a status of its step (its id is the blob's digest):

    {"statuses":[{"id":"sha256:…","vertex":"sha256:…","total":2153472,"current":1048576,"timestamp":"…Z","started":"…Z"}]}

As in BuildKit, a vertex update repeats the step's whole state (started, completed,
cached, error), log data is base64 of the output bytes (a line with its newline) with
the stream it came from (1 stdout, 2 stderr), and
times are RFC 3339 with nanoseconds. A vertex's digest is its op's digest in ocibuild's
build graph (the same step has the same digest in every build, as BuildKit's LLB
digests do; the two kinds of digest are not comparable), or, for an event without one,
a sha256 of its position and name.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from ocibuild.oci.digest import of_bytes
from ocibuild.progress.events import Event

EXPORT_NAME = "exporting to image"


def rfc3339(wall: float) -> str:
    """A Unix time as Go's RFC3339Nano prints it in UTC (trailing zeros dropped)."""
    moment = datetime.fromtimestamp(wall, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return text + (f".{fraction}" if fraction else "") + "Z"


def vertex_digest(index: int, name: str) -> str:
    return of_bytes(f"{index}\n{name}".encode())


class RawJsonRenderer:
    """Writes one SolveStatus-shaped JSON line per event. Thread-safe."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._wall_offset = time.time() - time.monotonic()  # events carry monotonic times
        self._started: dict[int, float] = {}
        self.failures: list[tuple[Event, list[str]]] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._write(self._status(event))

    def _status(self, event: Event) -> dict[str, Any]:
        digest = event.digest or vertex_digest(event.index, event.name)
        now = self._time(event.time)
        if event.kind == "status":
            status: dict[str, Any] = {"id": event.text, "vertex": digest}
            if event.total:
                status["total"] = event.total
            status.update(current=event.current, timestamp=now)
            if event.started is not None:
                status["started"] = self._time(event.started)
            if event.completed:
                status["completed"] = now
            return {"statuses": [status]}
        if event.kind == "log":
            data = base64.b64encode((event.text + "\n").encode(errors="surrogateescape"))
            return {"logs": [{"vertex": digest, "stream": event.stream,
                              "data": data.decode("ascii"), "timestamp": now}]}
        if event.kind == "started":
            self._started[event.index] = event.time
        vertex: dict[str, Any] = {"digest": digest, "name": event.name,
                                  "started": self._time(self._started.get(event.index,
                                                                          event.time))}
        if event.kind in ("done", "cached", "failed"):
            vertex["completed"] = now
        if event.kind == "cached":
            vertex["cached"] = True
        if event.kind == "failed":
            vertex["error"] = event.text
            self.failures.append((event, []))
        return {"vertexes": [vertex]}

    def _time(self, monotonic: float) -> str:
        return rfc3339(monotonic + self._wall_offset)

    def _write(self, status: dict[str, Any]) -> None:
        self._out.write(json.dumps(status, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._out.flush()

    def stop(self) -> None:
        """Nothing to end: every line is already written."""

    def summary(self) -> str:
        """BuildKit's rawjson display prints no failure report (the error is in the
        failed vertex); the command's closing error line still follows."""
        return ""

    def closing_text(self, text: str) -> str:
        """The closing lines ("writing image …", cache and push reports, warnings) as
        the statuses of one "exporting to image" vertex, as BuildKit reports its
        exporter: every line on stderr stays JSON."""
        lines = [line for line in text.splitlines() if line]
        if not lines:
            return ""
        now = rfc3339(time.time())
        digest = of_bytes(EXPORT_NAME.encode())
        status = {
            "vertexes": [{"digest": digest, "name": EXPORT_NAME, "started": now,
                          "completed": now}],
            "statuses": [{"id": line, "vertex": digest, "current": 0, "timestamp": now,
                          "started": now, "completed": now} for line in lines],
        }
        return json.dumps(status, ensure_ascii=False, separators=(",", ":")) + "\n"
