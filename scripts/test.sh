#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine (as root): installs what it
# needs, creates the unprivileged test users, then runs ruff and pytest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/bootstrap.sh test
bash scripts/test-users.sh
.venv/bin/ruff check ocibuild tests bench
exec .venv/bin/python -m pytest "$@"
