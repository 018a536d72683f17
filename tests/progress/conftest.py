"""End-to-end progress tests build as the unprivileged user, as tests/build does, and
move images through the test registry, as tests/registry does."""

from tests.build.conftest import (  # noqa: F401  (fixtures)
    _compiled_package,
    builder,
    busybox_store_template,
)
from tests.registry.conftest import cli, http_registry, images, proxy  # noqa: F401
