"""Property-based fuzzing of the gateway's OpenAPI schema (schemathesis + hypothesis): no input gives a 5xx.

Runs against the hf-engine gateway (a real uvicorn server; generations are capped at 16 tokens) with an admin key,
so every route — OpenAI, ops and /admin — is exercised past authentication.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_schema(hf_stack):
    return schemathesis.openapi.from_url(hf_stack.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_the_gateway_fail(case, hf_stack):
    response = case.call(headers={"Authorization": f"Bearer {hf_stack.admin_key}"}, timeout=60)
    assert response.status_code < 500, f"{case.method} {case.path} {case.body!r} → {response.status_code} " \
                                       f"{response.text[:500]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["message"] and error["type"]  # the OpenAI error shape, always
