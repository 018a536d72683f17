"""End-to-end builds for the frontend's tests: the build area's fixtures (a busybox store
for the unprivileged user `ocib-sub`), reused as they are."""

from tests.build.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    _compiled_package,
    busybox_store_template,
    module_builder,
)
