"""GCN's unified notice schemas from the shared data (``gcn-schema/gcn/notices``), loaded into a
local registry so the relative ``$ref``s resolve without a network."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from skyscan.physics.geometry import shared_data_dir

ICECUBE_ALERT_SCHEMA = "icecube/single_neutrino_alerts.schema.json"


def schema_dir() -> Path | None:
    base = shared_data_dir()
    folder = base / "gcn-schema" / "gcn" / "notices" if base else None
    return folder if folder is not None and (folder / ICECUBE_ALERT_SCHEMA).is_file() else None


SKIP_REASON = "GCN schemas (../shared/data/gcn-schema/gcn/notices) absent"


@lru_cache(maxsize=1)
def icecube_alert_validator() -> Any:
    """A Draft 2020-12 validator of IceCube's single-neutrino-alert notices with every schema of the
    folder registered under its ``$id``."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    folder = schema_dir()
    assert folder is not None, SKIP_REASON
    resources = []
    for path in sorted(folder.rglob("*.schema.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    registry = Registry().with_resources(resources)
    schema = json.loads((folder / ICECUBE_ALERT_SCHEMA).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def schema_properties() -> set[str]:
    """Every property name the IceCube schema and the schemas it includes define."""
    folder = schema_dir()
    assert folder is not None, SKIP_REASON
    names: set[str] = set()
    seen: set[Path] = set()

    def visit(path: Path) -> None:
        if path in seen:
            return
        seen.add(path)
        schema = json.loads(path.read_text())
        names.update(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            if "$ref" in part:
                visit((path.parent / part["$ref"]).resolve())

    visit((folder / ICECUBE_ALERT_SCHEMA).resolve())
    return names


def validation_errors(notice: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}"
        for e in icecube_alert_validator().iter_errors(notice)
    ]
