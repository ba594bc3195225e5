"""Check a ``--json`` document against its command's JSON Schema in ``hakeep/schemas/`` (draft 2020-12).

Every schema is loaded into one registry under its ``$id`` (``urn:hakeep:schema:<name>``), so the
commands' ``$ref`` to ``common`` resolve offline. :func:`check` validates one document (or, for
``status --watch --json``, each line) and fails with every violation and where it is.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parent.parent / "hakeep" / "schemas"


@functools.cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


@functools.cache
def registry() -> Registry:
    resources = [(schema(p.name.removesuffix(".schema.json"))["$id"],
                  Resource.from_contents(schema(p.name.removesuffix(".schema.json"))))
                 for p in sorted(SCHEMAS.glob("*.schema.json"))]
    return Registry().with_resources(resources)


def errors(doc: object, command: str) -> list[str]:
    """Every way ``doc`` breaks ``command``'s schema, as "path: message" (empty: it conforms)."""
    validator = Draft202012Validator(schema(command), registry=registry())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]


def check(stdout: str, command: str, *, lines: bool = False) -> Any:
    """Parse ``stdout`` (one document, or with ``lines`` one per line) and assert it conforms;
    returns what was parsed."""
    docs = [json.loads(line) for line in stdout.splitlines() if line.strip()] if lines else [json.loads(stdout)]
    for doc in docs:
        found = errors(doc, command)
        assert not found, f"hakeep {command} --json breaks its schema:\n" + "\n".join(found) + f"\n{stdout[:2000]}"
    return docs if lines else docs[0]
