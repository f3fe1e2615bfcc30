"""Extract the request schemas the fuzz tests need from OpenAI's openapi.yaml.

The full spec takes seconds to parse; the tests read a small JSON subset instead: the named
request schemas and everything they reference, without prose (descriptions, examples,
``x-`` annotations). The subset records the spec's sha256, and a test fails when the spec
changed, saying to run::

    python -m tests.support.openapi_subset
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parents[3] / "shared" / "data" / "openai" / "openapi.yaml"
SUBSET = Path(__file__).resolve().parents[1] / "data" / "openapi" / "requests.json"
ROOTS = ("CreateChatCompletionRequest", "CreateResponse", "CreateEmbeddingRequest")
_PROSE = {"description", "example", "examples", "title", "deprecated"}
_PREFIX = "#/components/schemas/"


def spec_sha256(path: Path = SPEC) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items()
                if k not in _PROSE and not k.startswith("x-")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$recursiveRef") and isinstance(value, str) and value.startswith(_PREFIX):
                found.append(value.removeprefix(_PREFIX))
            else:
                found.extend(_refs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_refs(value))
    return found


def extract(spec: dict[str, Any], roots: tuple[str, ...] = ROOTS) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    wanted: dict[str, Any] = {}
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in wanted:
            continue
        wanted[name] = _strip(schemas[name])
        stack.extend(_refs(wanted[name]))
    return dict(sorted(wanted.items()))


def main() -> None:
    import yaml

    spec = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    subset = {"spec_sha256": spec_sha256(), "roots": list(ROOTS), "schemas": extract(spec)}
    SUBSET.parent.mkdir(parents=True, exist_ok=True)
    SUBSET.write_text(json.dumps(subset, indent=1, sort_keys=True, default=str) + "\n")
    print(f"wrote {SUBSET} ({len(subset['schemas'])} schemas)")


if __name__ == "__main__":
    main()
