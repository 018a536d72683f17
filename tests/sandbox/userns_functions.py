"""Functions the tests run inside the sandbox's user namespace with run_in_userns."""

from __future__ import annotations

import os
from typing import Any


def make_owned_file(args: dict[str, Any]) -> dict[str, Any]:
    with open(args["path"], "w") as f:
        f.write("x")
    os.chown(args["path"], args["uid"], args["gid"])
    st = os.stat(args["path"])
    return {"uid_inside": os.getuid(), "owner_inside": [st.st_uid, st.st_gid]}


def helper_state(args: Any) -> dict[str, Any]:
    """What the helper process loaded before calling this, and whether it finds the
    packages the builder finds (the layer codecs are not in the standard library)."""
    import importlib.util
    import sys

    return {"modules": sorted(sys.modules), "no_site": sys.flags.no_site,
            "codec_found": importlib.util.find_spec("zstandard") is not None}


def process_state(args: Any) -> dict[str, Any]:
    """The helper's open descriptors (what each is), and the signals it handles in
    Python code."""
    import signal

    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the listing's own descriptor, closed meanwhile
    handled = [int(n) for n in signal.valid_signals() if callable(signal.getsignal(n))]
    return {"fds": fds, "handled": handled, "pid": os.getpid()}


def complain_and_die(args: Any) -> None:
    """Write to stderr and end without a result, as a helper that crashes does."""
    import sys

    sys.stderr.write(f"helper complaint: {args}\n")
    sys.stderr.flush()
    os._exit(3)
