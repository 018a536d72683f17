#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine (as root): installs what it
# needs, creates the unprivileged test users, registers QEMU's aarch64 handler, then
# runs ruff and pytest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/bootstrap.sh test
bash scripts/test-users.sh
bash scripts/test-binfmt.sh
.venv/bin/ruff check ocibuild tests bench
exec .venv/bin/python -m pytest "$@"
