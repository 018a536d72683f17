"""The reliability suite reuses the end-to-end build set-up (a busybox store per test)."""

from tests.build.conftest import (  # noqa: F401 (fixtures)
    _compiled_package,
    builder,
    busybox_store_template,
    module_builder,
)
