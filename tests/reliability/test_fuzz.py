"""Schemathesis against the app's own OpenAPI schema, in-process over ASGI (the lifespan runs).

Every generated request, valid (positive) or not (negative), must get a documented status that is never
5xx, a body that matches the documented response schema, and negative data must be rejected with 4xx.
"""

from __future__ import annotations

import collections
import math
import time
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lnrnn.serve.app import create_app
from tests.helpers import settings_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def run_cases(
    op: schemathesis.APIOperation, mode: GenerationMode, n: int, derandomize: bool, seen: collections.Counter
) -> None:
    """Up to ``n`` cases of one operation in one mode; every response goes through the checks."""
    name = f"{op.method.upper()} {op.path}"
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call()
        seen[(name, mode.value, response.status_code)] += 1
        case.validate_response(response, checks=checks)

    try:
        run()
    except Unsatisfiable:
        # a negative case needs a value the schema forbids; a raw octet-stream body with no
        # constrained parameter (POST /v1/compress, /v1/decompress) has none to offer
        if mode is not GenerationMode.NEGATIVE:
            raise
        seen[(name, mode.value, "none possible")] += 1


def fuzz(model_dir: Path, target: int, derandomize: bool) -> collections.Counter:
    """Run at least ``target`` generated cases; return the count of each (operation, mode, status)."""
    app = create_app(settings_for(model_dir, max_text_bytes=2000, max_generate_chars=40))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    posts = [op for op in operations if op.method.upper() == "POST"]
    per_run = math.ceil(target / (2 * len(posts))) + 1  # positive and negative for every POST route
    seen: collections.Counter = collections.Counter()
    for op in operations:
        if op.method.upper() == "POST":
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run_cases(op, mode, per_run, derandomize, seen)
        else:  # GET routes without parameters: a few calls say it all
            run_cases(op, GenerationMode.POSITIVE, 3, derandomize, seen)
    for _ in range(3):  # short of the target (an operation had no negative case, or few distinct ones)?
        missing = target - sum(seen.values())
        if missing <= 0:
            break
        for op in posts:  # ... then more valid requests on every POST route
            run_cases(op, GenerationMode.POSITIVE, math.ceil(missing / len(posts)) + 1, derandomize, seen)
    return seen


def report(seen: collections.Counter, seconds: float) -> int:
    total = sum(seen.values())
    print(f"\nschemathesis: {total} cases in {seconds:.1f} s")
    for key, n in sorted(seen.items(), key=lambda kv: tuple(map(str, kv[0]))):
        print(f"  {key[0]:<20} {key[1]:<9} {key[2]}: {n}")
    assert not [k for k in seen if isinstance(k[2], int) and k[2] >= 500], "server errors"
    return total


def test_schemathesis_200_cases(model_dir: Path) -> None:
    start = time.perf_counter()
    assert report(fuzz(model_dir, 200, derandomize=True), time.perf_counter() - start) >= 200


@pytest.mark.slow
def test_schemathesis_1000_cases(model_dir: Path) -> None:
    start = time.perf_counter()
    assert report(fuzz(model_dir, 1000, derandomize=False), time.perf_counter() - start) >= 1000
