"""Many builds in one process of the unprivileged user (the table tests' driver).

Run as `python -m tests.build.batch JOBS.json`: each job is build()'s keyword arguments
plus "context"; prints one JSON line per job: {"manifest": digest} or {"error": text}.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import ocibuild
    from ocibuild.errors import OcibuildError

    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        context = job.pop("context")
        try:
            report = ocibuild.build(context, **job)
            result = {"manifest": report.manifest_digest, "steps": report.steps,
                      "cached": report.cached_steps}
        except OcibuildError as exc:
            result = {"error": exc.message}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
