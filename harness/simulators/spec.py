"""GoHighLevel's OpenAPI specs (harness/specs/ghl, vendored) as request and response validators.

Tests use ``validate_request`` / ``validate_response`` to hold the simulator and our hook to the
published contract; the simulator's strict mode uses ``request_problems``. Schemas are checked
with openapi-schema-validator (OpenAPI 3.0 dialect: ``nullable`` and friends), and the
``../common/common-schemas.json`` references resolve through a ``referencing`` registry holding
every file, so nothing is fetched.

Where the spec is silent or plainly wrong, ``ERRATA`` patches it, each with its reason; the
generated docs/ghl_operations.md lists them. Everything else is taken as published.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPEC_DIR = Path(os.environ.get("GHL_SPEC_DIR") or Path(__file__).resolve().parents[1] / "specs" / "ghl")
SPEC_FILES = ("contacts", "calendars", "locations", "oauth")
# A name for the registry only: relative $refs resolve against it, nothing is ever fetched.
BASE_URI = "https://ghl-spec.invalid/"
METHODS = ("get", "post", "put", "patch", "delete")
COMMON = "../common/common-schemas.json#/components/schemas/"


class SpecViolation(AssertionError):
    """A request or response does not match GHL's published contract."""


@dataclass(frozen=True)
class Erratum:
    spec: str
    pointer: tuple[str, ...]
    value: Any
    reason: str


def _json(schema_ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": schema_ref}}}


_FILTER = {"type": "object", "properties": {
    "field": {"type": "string"}, "value": {},
    "operator": {"type": "string", "enum": ["eq", "not_eq", "contains", "not_contains", "exists", "not_exists",
                                           "range"]},
    "group": {"type": "string", "enum": ["AND", "OR"]}, "filters": {"type": "array", "items": {"type": "object"}}}}
_SEARCH_BODY = {"type": "object", "required": ["locationId"], "properties": {
    "locationId": {"type": "string"}, "query": {"type": "string", "maxLength": 75},
    "page": {"type": "integer", "minimum": 1}, "pageLimit": {"type": "integer", "minimum": 1, "maximum": 500},
    "searchAfter": {"type": "array", "minItems": 2, "items": {}},
    "filters": {"type": "array", "items": _FILTER},
    "sort": {"type": "array", "maxItems": 2, "items": {"type": "object", "required": ["field"], "properties": {
        "field": {"type": "string"}, "direction": {"type": "string", "enum": ["asc", "desc"]}}}}}}
_SEARCH_HIT = {"allOf": [{"$ref": "#/components/schemas/ContactsSearchSchema"},
                         {"type": "object", "required": ["id", "searchAfter"],
                          "properties": {"searchAfter": {"type": "array", "minItems": 2, "items": {}}}}]}
_SEARCH_RESPONSE = {"type": "object", "required": ["contacts"],
                    "anyOf": [{"required": ["total"]}, {"required": ["count"]}],
                    "properties": {"contacts": {"type": "array", "items": _SEARCH_HIT},
                                   "total": {"type": "number"}, "count": {"type": "number"}}}
_SEARCH = ("paths", "/contacts/search", "post")
_DATE_OF_BIRTH = {"type": "string", "nullable": True,
                  "description": "YYYY-MM-DD and the other formats listed in the spec's description"}

ERRATA: tuple[Erratum, ...] = (
    Erratum("contacts", ("components", "schemas", "SearchBodyV2DTO"), _SEARCH_BODY,
            "SearchBodyV2DTO is an empty object in the spec; the body is the one NOTES.md describes "
            "(locationId, page or searchAfter, pageLimit <= 500, filters, sort <= 2 entries, query <= 75 chars)."),
    Erratum("contacts", (*_SEARCH, "responses", "200", "content"), _json("#/components/schemas/SearchResponse"),
            "The search 200 response has no schema; GHL answers {contacts, total} (the spec's list DTO says "
            "count: both are accepted), each hit carrying its searchAfter cursor (NOTES.md)."),
    Erratum("contacts", ("components", "schemas", "SearchResponse"), _SEARCH_RESPONSE,
            "Schema of the search response described above."),
    Erratum("contacts", (*_SEARCH, "responses", "400", "content"), _json(COMMON + "BadRequestDTO"),
            "The search 400 response has no schema; it is BadRequestDTO like every other operation's."),
    Erratum("contacts", (*_SEARCH, "responses", "401", "content"), _json(COMMON + "UnauthorizedDTO"),
            "The search 401 response has no schema; it is UnauthorizedDTO like every other operation's."),
    Erratum("contacts", (*_SEARCH, "responses", "422"),
            {"description": "Unprocessable Entity", "content": _json(COMMON + "UnprocessableDTO")},
            "The search lists no 422, but GHL refuses invalid bodies (pageLimit > 500, 3 sort entries) "
            "with UnprocessableDTO as everywhere else (NOTES.md)."),
    *(Erratum("contacts", ("components", "schemas", dto, "properties", "dateOfBirth"), _DATE_OF_BIRTH,
              f"{dto}.dateOfBirth is typed object, yet its description and example are date strings.")
      for dto in ("CreateContactDto", "UpdateContactDto", "UpsertContactDto")),
    *(Erratum("calendars", ("components", "schemas", "CalendarEventDTO", "properties", name),
              {"type": "string", "description": name},
              f"CalendarEventDTO.{name} is typed object, yet its example (and GetEventSchema) is an ISO string.")
      for name in ("startTime", "endTime", "dateAdded", "dateUpdated")),
    Erratum("locations", ("components", "schemas", "LocationTaskListSuccessfulResponseDto", "properties", "tasks"),
            {"type": "array", "items": {"$ref": "contacts.json#/components/schemas/TaskSchema"}},
            "Task search types tasks as an array of arrays (a code-generation slip); they are task objects."),
)


# GHL refuses some requests its spec allows. The generated-request run (tests/contract/
# test_ghl_generated_requests.py) sends spec-valid requests: each 422 it gets must match one of these.
STRICTER_THAN_SPEC: tuple[tuple[str, str], ...] = (
    (r"property .* should not exist",
     "Request bodies: the specs never set additionalProperties: false, yet GHL refuses undeclared "
     "properties (class-validator's forbidNonWhitelisted)."),
    (r"\w+ should not be empty",
     "Required strings (task title and dueDate, note body) must not be empty (IsNotEmpty); "
     "the specs set no minLength."),
    (r"email must be an email", "Contact email: the specs type it a plain string; GHL checks it is an email address."),
    (r"limit must be a positive integer and skip a non-negative one",
     "Task search: limit and skip are typed number without bounds; GHL wants limit >= 1 and skip >= 0."),
    (r"customFields\.\d+ must be an object with an id",
     "Contact custom fields: customFieldsInputStringSchema requires neither id nor key. ASSUMPTION: the simulator "
     "keeps no registry of a location's custom fields, so it cannot resolve a key: a write names the field by id "
     "(harness/simulators/ghl_custom_fields.py)."),
    (r"page beyond \d+ results: use searchAfter|searchAfter must have \d+ values",
     "Contact search: page paging stops at 10,000 results and a searchAfter cursor has one value per sort "
     "field plus the id (NOTES.md); the search body in ERRATA cannot say so."),
)


def stricter_than_spec(message: str) -> str | None:
    """The documented reason GHL refuses a spec-valid request with this message, if any."""
    return next((reason for pattern, reason in STRICTER_THAN_SPEC if re.fullmatch(pattern, message, re.DOTALL)), None)


def _patch(document: dict[str, Any], erratum: Erratum) -> None:
    node = document
    for key in erratum.pointer[:-1]:
        node = node.setdefault(key, {})
    node[erratum.pointer[-1]] = copy.deepcopy(erratum.value)


def uri(spec: str) -> str:
    return f"{BASE_URI}apps/{spec}.json"


@cache
def documents() -> dict[str, dict[str, Any]]:
    """The four app specs by name, errata applied, plus common-schemas under "common"."""
    if not SPEC_DIR.is_dir():
        raise FileNotFoundError(f"GHL specs not found at {SPEC_DIR}; set GHL_SPEC_DIR")
    docs = {name: json.loads((SPEC_DIR / "apps" / f"{name}.json").read_text()) for name in SPEC_FILES}
    for erratum in ERRATA:
        _patch(docs[erratum.spec], erratum)
    docs["common"] = json.loads((SPEC_DIR / "common" / "common-schemas.json").read_text())
    return docs


@cache
def registry() -> Registry:
    docs = documents()
    resources = [(uri(name), DRAFT4.create_resource(doc)) for name, doc in docs.items() if name != "common"]
    resources.append((f"{BASE_URI}common/common-schemas.json", DRAFT4.create_resource(docs["common"])))
    return Registry().with_resources(resources)


@dataclass(frozen=True)
class Operation:
    spec: str
    method: str
    path: str
    operation_id: str
    scopes: tuple[str, ...]
    version: str | None
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def pointer(self) -> str:
        """JSON pointer of the operation inside its spec document."""
        return "/paths/" + self.path.replace("~", "~0").replace("/", "~1") + "/" + self.method.lower()


def _scopes(op: dict[str, Any]) -> tuple[str, ...]:
    return tuple(scope for requirement in op.get("security") or [] for scopes in requirement.values()
                 for scope in scopes)


def _version(op: dict[str, Any]) -> str | None:
    for param in op.get("parameters", []):
        if param.get("in") == "header" and param.get("name") == "Version":
            return param["schema"]["enum"][0]
    return None


@cache
def operations() -> tuple[Operation, ...]:
    docs = documents()
    return tuple(Operation(name, method.upper(), path, op.get("operationId", ""), _scopes(op), _version(op), op)
                 for name in SPEC_FILES for path, item in docs[name]["paths"].items()
                 for method, op in item.items() if method in METHODS)


def _segment_matches(template: str, actual: str) -> bool:
    if template.startswith("{"):
        return bool(actual)
    return template == actual and not actual.startswith("{")


def find(method: str, path: str) -> Operation:
    """The operation serving a concrete path (``/contacts/abc/notes``) or a route template
    (``/contacts/{contact_id}/notes``); literal segments beat parameters, as in any router."""
    parts = path.split("?")[0].split("/")
    candidates = [op for op in operations() if op.method == method.upper() and len(op.path.split("/")) == len(parts)
                  and all(map(_segment_matches, op.path.split("/"), parts))]
    if not candidates:
        raise SpecViolation(f"{method.upper()} {path} is not an operation of the GHL specs")
    return max(candidates, key=lambda op: sum(not s.startswith("{") for s in op.path.split("/")))


def template_key(method: str, path: str) -> tuple[str, str]:
    """(METHOD, path with every parameter as {}) to compare spec paths with route paths."""
    return method.upper(), re.sub(r"\{[^}]*\}", "{}", path)


def _problems(op: Operation, pointer: str, instance: Any) -> list[str]:
    validator = OAS30Validator({"$ref": f"{uri(op.spec)}#{pointer}"}, registry=registry(),
                               format_checker=oas30_format_checker)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))]


def _resolve(op: Operation, pointer: str) -> dict[str, Any]:
    resolved = registry().resolver(base_uri=uri(op.spec)).lookup(f"#{pointer}")
    while "$ref" in resolved.contents:
        resolved = resolved.resolver.lookup(resolved.contents["$ref"])
    return resolved.contents


def _body_pointer(op: Operation) -> tuple[str, str] | None:
    content = op.raw.get("requestBody", {}).get("content", {})
    for media in ("application/json", "application/x-www-form-urlencoded"):
        if media in content:
            return media, f"{op.pointer}/requestBody/content/{media.replace('/', '~1')}/schema"
    return None


@cache
def takes_body(method: str, path: str) -> bool:
    return _body_pointer(find(method, path)) is not None


def request_problems(method: str, path: str, body: Any, forbid_unknown: bool = True) -> list[str]:
    """What is wrong with a request body, in class-validator's words where it has them."""
    op = find(method, path)
    located = _body_pointer(op)
    if located is None:
        return [] if body in (None, {}) else [f"{op.method} {op.path} takes no body"]
    problems = _problems(op, located[1], body)
    declared = _resolve(op, located[1]).get("properties") or {}
    if forbid_unknown and declared and isinstance(body, dict):
        problems += [f"property {name} should not exist" for name in body if name not in declared]
    return problems


def response_problems(method: str, path: str, status: int, body: Any) -> list[str]:
    op = find(method, path)
    response = op.raw.get("responses", {}).get(str(status))
    if response is None:
        return [f"{op.method} {op.path} documents no {status} response"]
    if "application/json" not in response.get("content", {}):
        return [] if body in (None, b"", "") else [f"{op.method} {op.path} {status} documents no body"]
    return _problems(op, f"{op.pointer}/responses/{status}/content/application~1json/schema", body)


def validate_request(method: str, path: str, body: Any, forbid_unknown: bool = True) -> None:
    if problems := request_problems(method, path, body, forbid_unknown):
        raise SpecViolation(f"{method.upper()} {path} request: " + "; ".join(problems))


def validate_response(method: str, path: str, status: int, body: Any) -> None:
    if problems := response_problems(method, path, status, body):
        raise SpecViolation(f"{method.upper()} {path} {status} response: " + "; ".join(problems))


@cache
def webhook_schema(event_type: str) -> dict[str, Any]:
    """The JSON schema of a webhook event, from the ``json json_schema`` block of webhooks/<type>.md."""
    text = (SPEC_DIR / "webhooks" / f"{event_type}.md").read_text()
    match = re.search(r"```json json_schema\n(.*?)\n```", text, re.DOTALL)
    if match is None:
        raise SpecViolation(f"webhooks/{event_type}.md has no json_schema block")
    return json.loads(match.group(1))


def validate_webhook(payload: dict[str, Any]) -> None:
    """A webhook body against its event's schema, plus the ``timestamp`` and ``webhookId`` every body carries."""
    schema = webhook_schema(payload.get("type", ""))
    errors = [e.message for e in Draft7Validator(schema).iter_errors(payload)]  # plain JSON Schema, not OpenAPI
    errors += [f"{name} is missing" for name in ("timestamp", "webhookId") if not payload.get(name)]
    if errors:
        raise SpecViolation(f"{payload.get('type')} webhook: " + "; ".join(errors))
