"""The rate-limit headers of a decision: every case of the file shared with the Rust client's header tests
(``clients/testdata/rate_limit_headers.json``), so that both answer with the same headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quorate import Decision, LimitDecision, Source
from quorate.headers import RETRY_AFTER, rate_limit_headers, retry_after_secs

SHARED_CASES = Path(__file__).resolve().parents[2] / "testdata" / "rate_limit_headers.json"
CASES: list[dict[str, Any]] = json.loads(SHARED_CASES.read_text(encoding="utf-8"))["cases"]


def decision(case: dict[str, Any]) -> Decision:
    """The decision a case describes, as the Rust test builds it."""
    overall = case["overall"]
    limit = None
    if overall is not None:
        limit = LimitDecision(
            policy=overall["policy"],
            key="api_key=agent_42",
            allowed=case["allowed"],
            limit=overall["limit"],
            base_limit=overall["limit"],
            remaining=overall["remaining"],
            reset_after_ns=overall["reset_after_ns"],
            retry_after_ns=overall["retry_after_ns"],
            window_ns=overall["window_ns"],
        )
    limits = (limit,) if limit is not None else ()
    return Decision(case["allowed"], Source.CLUSTER, False, limit, limits, 1)


def test_the_shared_file_has_the_cases_both_clients_rely_on() -> None:
    assert len(CASES) >= 10
    names = " ".join(case["name"] for case in CASES)
    for topic in ("Retry-After", "fail-open", "escaped", "round"):
        assert topic in names, topic


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_every_shared_case_gets_exactly_its_headers(case: dict[str, Any]) -> None:
    expected = [(name, value) for name, value in case["headers"]]
    assert rate_limit_headers(decision(case["decision"])) == expected


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_retry_after_secs_matches_the_retry_after_header_of_every_denied_case(case: dict[str, Any]) -> None:
    header = next((value for name, value in case["headers"] if name == RETRY_AFTER), None)
    if header is None:
        assert case["decision"]["allowed"] or case["decision"]["overall"] is None
    else:
        assert str(retry_after_secs(decision(case["decision"]))) == header
