"""Generated requests against the strict GHL simulator: schemathesis reads the vendored specs
(with spec.ERRATA applied) and sends spec-valid and spec-invalid requests to every operation the
simulator serves, over a real socket.

Every answer must be documented (status, content type, body schema) and never a 5xx; an invalid
request must be refused; a valid one refused with 422 only for a reason in
spec.STRICTER_THAN_SPEC (the places where GHL is stricter than its own spec, listed in
docs/ghl_operations.md). Bounded: EXAMPLES requests per operation and mode, seeded, so it runs the
same each time (~30 s: slow).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from harness.simulators import ghl, spec
from tests.contract.ghl_sim import LOCATION, running_sim
from tests.contract.test_ghl_simulator_contract import served_operations

pytestmark = pytest.mark.slow

EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 8}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def generation_specs(folder: Path) -> dict[str, Path]:
    """The specs as spec.py validates them, written out so their relative $refs resolve; request
    bodies closed to undeclared properties (GHL refuses them), so generation explores real fields."""
    docs = json.loads(json.dumps(spec.documents()))
    for op in served_operations():
        ref = op.raw.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        name = ref.get("$ref", "").removeprefix("#/components/schemas/")
        if name and "/" not in name:
            docs[op.spec]["components"]["schemas"][name]["additionalProperties"] = False
    (folder / "apps").mkdir()
    (folder / "common").mkdir()
    (folder / "common" / "common-schemas.json").write_text(json.dumps(docs["common"]))
    paths = {}
    for name in ("contacts", "calendars", "locations"):
        paths[name] = folder / "apps" / f"{name}.json"
        paths[name].write_text(json.dumps(docs[name]))
    return paths


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    unexplained: Counter[str] = field(default_factory=Counter)


def exercise(operation: Any, mode: GenerationMode, known: dict[str, str], url: str, findings: Findings) -> None:
    """EXAMPLES[mode] generated requests to one operation, some with the ids of real records."""
    name = f"{operation.method.upper()} {operation.path}"
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    @seed(15)
    @settings(max_examples=EXAMPLES[mode], deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(operation.as_strategy(mode), operation.as_strategy(mode, path_parameters=known)))
    def send(case: Any) -> None:
        response = case.call(base_url=url, headers={"Authorization": "Bearer pit-all"})
        findings.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
        except BaseException as exc:  # schemathesis raises a group of failures
            findings.problems.append(f"{name}: {str(exc)[:800]}")
        if mode == GenerationMode.POSITIVE and response.status_code == 422:
            for message in response.json()["message"]:
                if spec.stricter_than_spec(message) is None:
                    findings.unexplained[f"{name}: {message}"] += 1

    send()


def test_generated_requests_get_documented_answers_and_never_a_server_error(tmp_path):
    served = {spec.template_key(op.method, op.path) for op in served_operations()}
    findings = Findings()
    limiter = ghl.RateLimiter(burst_max=10**9, daily_max=10**9)  # the run is not about rate limits
    with running_sim(strict=True, limiter=limiter) as sim:
        real_ids = {"contactId": sim.contact()["id"], "locationId": LOCATION}
        for path in generation_specs(tmp_path).values():
            for result in schemathesis.openapi.from_path(path).get_all_operations():
                operation = result.ok()
                if spec.template_key(operation.method, operation.path) in served:
                    known = {name: value for name, value in real_ids.items() if f"{{{name}}}" in operation.path}
                    for mode in EXAMPLES:
                        exercise(operation, mode, known, sim.url, findings)
    assert not findings.problems, "\n\n".join(findings.problems[:5])
    assert not findings.unexplained, f"refused for a reason not in spec.STRICTER_THAN_SPEC: {findings.unexplained}"
    statuses = findings.statuses
    assert statuses[200] + statuses[201] > 20 and statuses[400] and statuses[422], statuses  # the run reached both
