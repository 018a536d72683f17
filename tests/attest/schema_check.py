"""Validate what the attestations hold: in-toto statements and SPDX 2.3 documents,
against the schemas in schemas/ (written from the specs, see each one's $comment), plus
what a schema cannot say: SPDX ids are unique and every relationship names ones that
exist."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).parent / "schemas"


@cache
def _validator(name: str) -> jsonschema.Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_statement(doc: Any) -> None:
    _validator("in-toto-statement-v1.json").validate(doc)


def validate_spdx(doc: Any) -> None:
    _validator("spdx-2.3.json").validate(doc)
    ids = ["SPDXRef-DOCUMENT"] + [e["SPDXID"] for e in (*doc.get("packages", ()),
                                                         *doc.get("files", ()))]
    assert len(ids) == len(set(ids)), "SPDX ids are not unique"
    for rel in doc.get("relationships", ()):
        assert rel["spdxElementId"] in ids and rel["relatedSpdxElement"] in ids, rel
