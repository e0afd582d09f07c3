"""The official RunPod REST v2 OpenAPI document, loaded once, with JSON Schema validation.

The sandbox validates every request body it receives (and, when asked, every response it
sends) against this spec, so the client is built against RunPod's real contract, not our
memory of it. OpenAPI 3.1 schemas are JSON Schema 2020-12, so `jsonschema` validates them
directly; `$ref`s resolve inside the document through a `referencing` registry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_FILE = Path(__file__).with_name("runpod-rest-v2.openapi.json")
SPEC_URI = "urn:runpod:rest-v2-openapi"
_METHODS = ("get", "put", "post", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    """One `method path` of the spec, e.g. `POST /v2/serverless`."""

    method: str
    path: str
    operation_id: str
    pointer: str  # JSON pointer of the operation object inside the spec


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _path_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


class OpenApiSpec:
    """Operations, request/response schemas and validators of one OpenAPI 3.1 document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource: Resource[Any] = DRAFT202012.create_resource(document)
        self._registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        self.operations: list[Operation] = []
        self._matchers: list[tuple[re.Pattern[str], Operation]] = []
        for path, item in document["paths"].items():
            for method in _METHODS:
                if method not in item:
                    continue
                op = Operation(
                    method=method.upper(),
                    path=path,
                    operation_id=item[method].get("operationId", ""),
                    pointer=f"/paths/{_escape(path)}/{method}",
                )
                self.operations.append(op)
                self._matchers.append((_path_regex(path), op))
        # Literal segments must win over `{id}` (e.g. /registries/delegations).
        self._matchers.sort(key=lambda m: m[1].path.count("{"))

    # -- lookup --------------------------------------------------------------------------
    def find(self, method: str, path: str) -> Operation | None:
        """The operation serving a concrete path such as `/v2/serverless/abc`, if any."""
        for regex, op in self._matchers:
            if op.method == method.upper() and regex.match(path):
                return op
        return None

    def operation(self, method: str, path_template: str) -> Operation | None:
        for op in self.operations:
            if op.method == method.upper() and op.path == path_template:
                return op
        return None

    def resolve(self, pointer: str) -> Any:
        node: Any = self.document
        for token in pointer.lstrip("/").split("/"):
            if not token:
                continue
            node = node[token.replace("~1", "/").replace("~0", "~")]
        return node

    def _follow(self, pointer: str) -> str:
        """Follow a local `$ref` object (responses, parameters) to its target pointer."""
        node = self.resolve(pointer)
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            pointer = node["$ref"].lstrip("#")
            node = self.resolve(pointer)
        return pointer

    def request_schema_pointer(self, op: Operation) -> str | None:
        obj = self.resolve(op.pointer)
        content = obj.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            return None
        return f"{op.pointer}/requestBody/content/application~1json/schema"

    def request_body_required(self, op: Operation) -> bool:
        return bool(self.resolve(op.pointer).get("requestBody", {}).get("required", False))

    def response_spec(self, op: Operation, status: int) -> tuple[str, dict[str, Any]] | None:
        """(pointer, response object) documented for `status`, falling back to `default`."""
        responses = self.resolve(op.pointer)["responses"]
        key = str(status) if str(status) in responses else "default"
        if key not in responses:
            return None
        pointer = self._follow(f"{op.pointer}/responses/{key}")
        return pointer, self.resolve(pointer)

    def response_schema_pointer(self, op: Operation, status: int, content_type: str) -> str | None:
        found = self.response_spec(op, status)
        if found is None:
            return None
        pointer, response = found
        if content_type not in response.get("content", {}):
            return None
        return f"{pointer}/content/{_escape(content_type)}/schema"

    # -- validation ----------------------------------------------------------------------
    def validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            schema = {"$ref": f"{SPEC_URI}#{pointer}"}
            self._validators[pointer] = Draft202012Validator(schema, registry=self._registry)
        return self._validators[pointer]

    def errors(self, pointer: str, instance: Any) -> list[str]:
        """Validation failures as RunPod words them: `$: additional properties 'bogus' not
        allowed`, `$.gpu.pools: [] should be non-empty`."""
        messages: list[str] = []
        for err in sorted(self.validator(pointer).iter_errors(instance), key=lambda e: e.json_path):
            if err.validator in ("unevaluatedProperties", "additionalProperties"):
                # When a sibling branch failed, JSON Schema also reports that branch's declared
                # fields as "unevaluated"; name only the fields no branch declares.
                declared = self._declared(err.schema)
                extra = [k for k in err.instance if k not in declared]
                messages.extend(
                    f"{err.json_path}: additional properties '{k}' not allowed" for k in extra
                )
            else:
                messages.append(f"{err.json_path}: {err.message}")
        return messages

    def _declared(self, schema: Any, depth: int = 0) -> set[str]:
        """Property names declared by a schema through $ref/allOf/anyOf/oneOf/if-then-else."""
        if not isinstance(schema, dict) or depth > 8:
            return set()
        names = set(schema.get("properties", {}))
        if "$ref" in schema:
            target = self._registry.resolver(base_uri=SPEC_URI).lookup(schema["$ref"])
            names |= self._declared(target.contents, depth + 1)
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(key, []):
                names |= self._declared(sub, depth + 1)
        for key in ("if", "then", "else"):
            names |= self._declared(schema.get(key), depth + 1)
        return names


@cache
def load_spec() -> OpenApiSpec:
    """The spec shipped as package data (a copy of shared/reference), parsed once."""
    return OpenApiSpec(json.loads(SPEC_FILE.read_text(encoding="utf-8")))
