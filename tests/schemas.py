"""Run documents checked against the committed JSON Schemas (docs/schema/) with jsonschema."""

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schema"


def _validator(name: str) -> Draft202012Validator:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    checker = Draft202012Validator.FORMAT_CHECKER
    return Draft202012Validator(schema, registry=registry, format_checker=checker)


def validate_run(document: dict) -> None:
    _validator("run.schema.json").validate(document)


def validate_runs(document: dict) -> None:
    _validator("runs.schema.json").validate(document)


def validate_evaluation(document: dict) -> None:
    _validator("evaluation.schema.json").validate(document)
