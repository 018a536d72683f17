"""The public API's tests call it as a user would: as the unprivileged user, in its own
process, against a store holding busybox:latest and the test registry."""

from tests.build.conftest import (  # noqa: F401  (fixtures)
    _compiled_package,
    builder,
    busybox_store_template,
    module_builder,
)
from tests.registry.conftest import http_registry, images  # noqa: F401
