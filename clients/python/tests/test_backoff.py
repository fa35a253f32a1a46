"""Agent-side backoff: which hint wins, jitter bounds, attempts and the time budget (the Rust `backoff` tests'
cases), then the blocking and async retry loops driving httpx through a mock transport with a recorded clock
(no real sleeping)."""

from __future__ import annotations

import httpx
import pytest

from quorate.backoff import Backoff, Jitter, aretry, ratelimit_reset, retry, retry_after

#: Sun, 06 Nov 1994 08:49:37 GMT, the HTTP-date of RFC 9110's examples.
EPOCH = 784_111_777.0


def fixed(value: float, **options: object) -> Backoff:
    """A backoff whose jitter draws are all ``value``."""
    return Backoff(rng=lambda: value, **options)  # type: ignore[arg-type]


def test_retry_after_seconds_take_precedence_over_the_ratelimit_t_parameter() -> None:
    headers = {"Retry-After": "7", "RateLimit": '"agent";r=0;t=30'}
    assert fixed(0.0).next_delay(429, headers, now=EPOCH) == 7.0


def test_retry_after_http_dates_are_honoured_relative_to_now_in_every_http_date_format() -> None:
    for date in ["Sun, 06 Nov 1994 08:49:49 GMT", "Sunday, 06-Nov-94 08:49:49 GMT", "Sun Nov  6 08:49:49 1994"]:
        assert retry_after({"retry-after": date}, EPOCH) == 12.0, date
    assert fixed(0.0).next_delay(503, {"Retry-After": "Sun, 06 Nov 1994 08:49:49 GMT"}, now=EPOCH) == 12.0


def test_retry_after_dates_in_the_past_mean_now_and_garbage_means_no_hint() -> None:
    assert retry_after({"retry-after": "Sun, 06 Nov 1994 08:00:00 GMT"}, EPOCH) == 0.0
    assert retry_after({"retry-after": "soon"}, EPOCH) is None
    assert retry_after({"retry-after": "-5"}, EPOCH) is None
    assert retry_after({}, EPOCH) is None
    assert retry_after({"retry-after": "9" * 40}, EPOCH) == float(2**64 - 1)


def test_ratelimit_t_is_used_when_there_is_no_retry_after() -> None:
    headers = [("RateLimit", '"per_ip";r=10;t=3, "agent";r=0;t=9')]
    assert fixed(0.0).next_delay(429, headers, now=EPOCH) == 9.0


def test_ratelimit_items_with_commas_or_semicolons_in_quoted_names_parse() -> None:
    value = '"a,b;r=9";r=0;t=12, "c\\"d";r=3;t=40'
    assert ratelimit_reset({"ratelimit": value}, False) == 12.0
    assert ratelimit_reset({"ratelimit": '"c";r=3;t=40'}, False) is None
    assert ratelimit_reset({"ratelimit": '"c";r=3;t=40'}, True) == 40.0
    assert ratelimit_reset({"ratelimit": "garbage"}, True) is None
    # Repeated header lines form one list (httpx keeps them apart).
    repeated = httpx.Headers([("ratelimit", '"a";r=0;t=5'), ("ratelimit", '"b";r=0;t=8')])
    assert ratelimit_reset(repeated, False) == 8.0


def test_without_hints_delays_double_from_the_base_and_stop_at_the_cap() -> None:
    backoff = Backoff(jitter=Jitter.NONE, base_delay=0.1, max_delay=0.5, max_attempts=10)
    delays = [backoff.next_delay(429, {}, now=EPOCH) for _ in range(5)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_full_jitter_stays_between_zero_and_the_exponential_delay() -> None:
    assert fixed(0.0, base_delay=0.1).next_delay(429, {}, now=EPOCH) == 0.0
    for seed in range(200):
        backoff = Backoff(seed=seed, base_delay=0.1, max_attempts=8)
        for attempt in range(7):
            delay = backoff.next_delay(429, {}, now=EPOCH)
            assert delay is not None and 0.0 <= delay <= min(0.1 * 2**attempt, 30.0), (seed, attempt, delay)


def test_equal_jitter_stays_between_half_and_all_of_the_exponential_delay() -> None:
    for seed in range(200):
        delay = Backoff(seed=seed, jitter=Jitter.EQUAL, base_delay=0.4).next_delay(429, {}, now=EPOCH)
        assert delay is not None and 0.2 <= delay <= 0.4
    assert fixed(0.0, jitter=Jitter.EQUAL, base_delay=0.4).next_delay(429, {}, now=EPOCH) == 0.2


def test_server_hints_are_never_shortened_and_lengthened_by_at_most_the_hint_jitter() -> None:
    headers = {"retry-after": "10"}
    assert fixed(0.0).next_delay(429, headers, now=EPOCH) == 10.0
    assert fixed(1.0).next_delay(429, headers, now=EPOCH) == pytest.approx(11.0)
    assert fixed(1.0, hint_jitter=0.0).next_delay(429, headers, now=EPOCH) == 10.0


def test_max_attempts_counts_the_first_request() -> None:
    backoff = fixed(0.5, max_attempts=3)
    hint = {"retry-after": "1"}
    assert backoff.next_delay(429, hint, now=EPOCH) is not None
    assert backoff.next_delay(429, hint, now=EPOCH) is not None
    assert backoff.next_delay(429, hint, now=EPOCH) is None
    assert backoff.attempts == 3
    backoff.reset()
    assert backoff.next_delay(429, hint, now=EPOCH) is not None


def test_no_retry_is_scheduled_past_the_time_budget() -> None:
    # A hint longer than the whole budget: give up at once rather than retry too early.
    assert (
        fixed(0.0, hint_jitter=0.0, max_elapsed=60, max_attempts=100).next_delay(429, {"retry-after": "61"}, now=EPOCH)
        is None
    )
    backoff = fixed(0.0, hint_jitter=0.0, max_elapsed=60, max_attempts=100)
    thirty = {"retry-after": "30"}
    assert backoff.next_delay(429, thirty, now=EPOCH) == 30.0
    assert backoff.next_delay(429, thirty, now=EPOCH + 30) == 30.0
    assert backoff.next_delay(429, thirty, now=EPOCH + 31) is None


def test_successes_and_client_errors_are_not_retried() -> None:
    backoff = Backoff()
    for status in (200, 400, 401, 404):
        assert backoff.next_delay(status, {"retry-after": "1"}, now=EPOCH) is None
    assert backoff.attempts == 0
    assert fixed(0.0, retry_on=lambda status: status == 409).next_delay(409, {}, now=EPOCH) is not None


def test_fresh_copies_do_not_jitter_in_lockstep_but_seeded_runs_repeat() -> None:
    original = Backoff(seed=7, base_delay=10.0)
    delays = [original.fresh().next_delay(429, {}, now=EPOCH) for _ in range(8)]
    assert len(set(delays)) > 1, delays
    again = Backoff(seed=7, base_delay=10.0)
    assert [again.fresh().next_delay(429, {}, now=EPOCH) for _ in range(8)] == delays


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Backoff(max_attempts=0)
    with pytest.raises(ValueError, match="base_delay"):
        Backoff(base_delay=-1)


class Recorder:
    """A fake clock that advances when slept on."""

    def __init__(self) -> None:
        self.now = EPOCH
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def clock(self) -> float:
        return self.now


def flaky_api(answers: list[httpx.Response | Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering with ``answers`` in turn (an exception is raised instead of answering)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[len(seen) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def test_the_blocking_loop_waits_for_retry_after_then_returns_the_success() -> None:
    transport, seen = flaky_api(
        [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(503), httpx.Response(200, text="ok")]
    )
    recorder = Recorder()
    backoff = Backoff(hint_jitter=0.0, jitter=Jitter.NONE, base_delay=0.5)
    with httpx.Client(transport=transport, base_url="http://api") as http:
        response = retry(lambda: http.get("/v1/chat"), backoff, sleep=recorder.sleep, clock=recorder.clock)
    assert (response.status_code, response.text, len(seen)) == (200, "ok", 3)
    # Retry-After 2 s, then the second failure's exponential 0.5 * 2 = 1 s.
    assert recorder.slept == [2.0, 1.0]
    assert backoff.attempts == 0  # the loop used a fresh copy


def test_the_blocking_loop_returns_the_last_429_once_attempts_run_out() -> None:
    transport, seen = flaky_api([httpx.Response(429, headers={"Retry-After": "1"})] * 3)
    recorder = Recorder()
    with httpx.Client(transport=transport, base_url="http://api") as http:
        response = retry(lambda: http.get("/"), Backoff(max_attempts=3), sleep=recorder.sleep, clock=recorder.clock)
    assert (response.status_code, len(seen), len(recorder.slept)) == (429, 3, 2)


@pytest.mark.anyio
async def test_the_async_loop_retries_transport_errors_it_is_told_about_and_raises_the_last() -> None:
    error = httpx.ConnectError("refused")
    transport, seen = flaky_api([error, httpx.Response(200)])
    recorder = Recorder()
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        ok = await aretry(
            lambda: http.get("/"),
            Backoff(jitter=Jitter.NONE, base_delay=0.25),
            retry_exceptions=(httpx.TransportError,),
            sleep=recorder.asleep,
            clock=recorder.clock,
        )
        assert (ok.status_code, recorder.slept) == (200, [0.25])

        failing, _ = flaky_api([error, error])
        async with httpx.AsyncClient(transport=failing, base_url="http://api") as broken:
            with pytest.raises(httpx.ConnectError):
                await aretry(
                    lambda: broken.get("/"),
                    Backoff(max_attempts=2),
                    retry_exceptions=(httpx.TransportError,),
                    sleep=recorder.asleep,
                    clock=recorder.clock,
                )
        once, refused = flaky_api([error])
        async with httpx.AsyncClient(transport=once, base_url="http://api") as unlisted:
            with pytest.raises(httpx.ConnectError):  # not listed in retry_exceptions: raised at once
                await aretry(lambda: unlisted.get("/"), Backoff(), sleep=recorder.asleep, clock=recorder.clock)
    assert (len(seen), len(refused), len(recorder.slept)) == (2, 1, 2)
