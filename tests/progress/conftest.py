"""End-to-end progress tests build as the unprivileged user, as tests/build does."""

from tests.build.conftest import (  # noqa: F401  (fixtures)
    _compiled_package,
    builder,
    busybox_store_template,
)
