"""Validate JSON we write against the OCI image-spec schemas in ../shared/oci-schemas."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.support.paths import SHARED

SCHEMA_DIR = SHARED / "oci-schemas"
SCHEMA_FILES = {
    "manifest": "image-manifest-schema.json",
    "index": "image-index-schema.json",
    "config": "config-schema.json",
    "layout": "image-layout-schema.json",
    "descriptor": "content-descriptor.json",
}


def _retrieve(uri: str) -> Resource[Any]:
    # The schemas name each other by relative file name, resolved against ids on
    # several different base URLs: the last path component is the file.
    name = uri.rsplit("/", 1)[-1]
    if not name.endswith(".json"):
        name += ".json"
    return Resource.from_contents(json.loads((SCHEMA_DIR / name).read_text()),
                                  default_specification=DRAFT4)


@cache
def _validator(kind: str) -> jsonschema.Validator:
    schema = json.loads((SCHEMA_DIR / SCHEMA_FILES[kind]).read_text())
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return jsonschema.Draft4Validator(schema, registry=registry,
                                      format_checker=jsonschema.FormatChecker())


def validate(kind: str, doc: Any) -> None:
    """Raise jsonschema.ValidationError when `doc` is not a valid OCI `kind`. Without
    ../shared beside the checkout (a fresh clone) the calling test skips, saying why."""
    if not SCHEMA_DIR.is_dir():
        import pytest

        pytest.skip(f"{SCHEMA_DIR} is missing: ../shared is not beside this checkout")
    if isinstance(doc, bytes | str):
        doc = json.loads(doc)
    _validator(kind).validate(doc)
