"""Every audience platform's shared behaviour, tested once over the platform table against its
contract fake: batches, audience reuse, mirror, replace, resume after a failed batch, transient
faults (time injected, never slept), partial acceptance, the permanent failure classes, the
connection form's Test button, and deterministic batches from a re-projection."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import pickle
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.module_loading import import_string
from campaign_sync.audience.build import build_audience
from campaign_sync.destinations import REGISTRY
from campaign_sync.hooks.audience import AudienceHook
from campaign_sync.hooks.duckdb import DuckDBHook
from campaign_sync.layout import RunLayout
from campaign_sync.operators.audience_export import PlatformExportOperator
from campaign_sync.plan import build_plan
from campaign_sync.platforms.audiences import paginate
from campaign_sync.platforms.batches import iter_batches
from campaign_sync.platforms.client import FIXES, PermanentPlatformError, PlatformError
from campaign_sync.platforms.clock import SYSTEM
from campaign_sync.projection.project import project_group
from campaign_sync.spec.checks import check_campaign
from campaign_sync.spec.model import Campaign
from campaign_sync.staging import Staging
from fakes.base import ContractError, LostAnswer, Response
from platform_support import DEST, FakeClock, one_group_plan, run_export, set_connection
from platform_table import IDS, PLATFORMS, Platform, member_count, rows, sent_twice

BATCH = 50


def hook_class(platform: Platform) -> type[AudienceHook]:
    return import_string(REGISTRY[platform.dtype].hook)


class Harness:
    """One platform's fake, its connection ``plat`` and an injected clock."""

    def __init__(self, platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
        self.platform = platform
        self.fake = platform.fake()
        self.url = self.fake.start()
        self.monkeypatch = monkeypatch
        self.clock = FakeClock()
        self.hook = hook_class(platform)
        self.connect()
        caps = dataclasses.replace(self.hook.capabilities, max_batch_rows=BATCH)
        monkeypatch.setattr(self.hook, "capabilities", caps)
        monkeypatch.setattr(AudienceHook, "clock", self.clock)
        for name, value in platform.tuning:
            monkeypatch.setattr(self.hook, name, value)

    def connect(self, secret: str | None = None, **extra: Any) -> None:
        fields = self.platform.connection(self.url, secret)
        fields["extra"] = {**fields.get("extra", {}), "timeout": 2, "max_attempts": 4, **extra}
        set_connection(self.monkeypatch, "plat", self.platform.dtype, **fields)

    def export(
        self, run_id: str, data: list[dict], mode: str = "add", **operator_args: Any
    ) -> dict[str, Any]:
        plan = one_group_plan(self.platform.dtype, self.platform.attributes, {"sync_mode": mode})
        return run_export(PlatformExportOperator, plan, run_id, data, **operator_args)

    def data_requests(self) -> list:
        return [r for r in self.fake.requests if self.fake.is_data_request(r)]

    def answer_data_requests(self, answer: Any) -> None:
        """Answer every data request with ``answer(request)`` (a Response, or raise)."""
        original = self.fake.route

        def route(request, fault):
            if self.fake.is_data_request(request):
                return answer(request)
            return original(request, fault)

        self.fake.route = route


@pytest.fixture(params=PLATFORMS, ids=IDS)
def harness(request, monkeypatch, staging_root):
    h = Harness(request.param, monkeypatch)
    yield h
    h.fake.stop()


def test_add_sends_every_row_once_in_batches(harness):
    data = rows(harness.platform, 230)
    result = harness.export("r1", data)
    assert result["rows_sent"] == 230 and result["batches"] == 5 and result["mode"] == "add"
    assert member_count(harness.fake) == 230
    assert len(harness.fake.received_rows("add")) == 230 and sent_twice(harness.fake) == 0
    assert harness.fake.contract_errors == []


def test_audience_is_reused_across_runs(harness):
    first = harness.export("r1", rows(harness.platform, 20))
    second = harness.export("r2", rows(harness.platform, 20, 10))
    assert first["location"] == second["location"]
    assert member_count(harness.fake) == 30


def test_audience_create_with_a_lost_answer_makes_no_twin(harness):
    if harness.platform.creates is None:
        pytest.skip("no audience object")
    method, suffix = harness.platform.creates
    original = harness.fake.route

    def lose_first_answer(request, fault):
        response = original(request, fault)
        creates = [r for r in harness.fake.requests if (r.method, r.path.endswith(suffix))
                   == (method, True)]  # fmt: skip
        if request.method == method and request.path.endswith(suffix) and len(creates) == 1:
            raise LostAnswer  # created on the platform, but the answer never arrives
        return response

    harness.fake.route = lose_first_answer
    result = harness.export("r1", rows(harness.platform, 30))
    creates = [r for r in harness.fake.requests if r.method == method and r.path.endswith(suffix)]
    assert len(creates) == 1 and result["rows_sent"] == 30  # looked up again, not re-created
    assert len({b["audience"] for b in harness.fake.received}) == 1
    assert member_count(harness.fake) == 30


def test_audiences_sharing_a_name_the_oldest_wins_and_the_others_are_logged_by_id(harness, caplog):
    if harness.platform.existing is None:
        pytest.skip("no audience object")
    name = "platform test - everyone - treatment"
    oldest, newer = (harness.platform.existing(harness.fake, name, n) for n in (1, 2))
    result = harness.export("r1", rows(harness.platform, 10))
    assert result["location"] == f"{harness.platform.dtype}:{oldest}"
    (warning,) = [r.getMessage() for r in caplog.records if "share this audience" in r.message]
    assert f"using the oldest, {oldest}" in warning and f"not used: {newer}" in warning
    assert name not in warning


def test_mirror_sends_exactly_the_joiners_and_leavers(harness):
    if "mirror" not in harness.platform.modes:
        pytest.skip("no mirror mode")
    first = rows(harness.platform, 200)
    harness.export("r1", first, "mirror")
    harness.fake.received.clear()
    second = first[20:] + rows(harness.platform, 20, 5000)  # 10% leave, 10% join
    result = harness.export("r2", second, "mirror")
    assert (result["added"], result["removed"], result["rows_sent"]) == (20, 20, 200)
    assert len(harness.fake.received_rows("add")) == 20
    assert len(harness.fake.received_rows("remove")) == 20
    assert member_count(harness.fake) == 200 and harness.fake.contract_errors == []
    # A retry of run 2 diffs against run 1 again, and resends nothing.
    harness.fake.received.clear()
    again = harness.export("r2", second, "mirror")
    assert harness.fake.received == [] and again["batches_resumed"] == 2


def test_modes_a_platform_lacks_are_refused_when_the_campaign_loads(harness):
    dtype = REGISTRY[harness.platform.dtype]
    assert dtype.capabilities.sync_modes == harness.platform.modes
    for mode in {"add", "mirror", "replace"} - set(harness.platform.modes):
        plan = one_group_plan(harness.platform.dtype, harness.platform.attributes)
        doc = plan.campaign.model_dump()
        doc["destinations"][DEST]["options"] = {"sync_mode": mode}
        problems = check_campaign(Campaign.model_validate(doc))
        assert [p.field for p in problems] == [f"destinations.{DEST}.options.sync_mode"]
        assert f"does not support sync_mode {mode!r}" in problems[0].message
    assert harness.fake.requests == []


def test_replace_swaps_the_membership(harness):
    if "replace" not in harness.platform.modes:
        pytest.skip("no replace mode")
    harness.export("r1", rows(harness.platform, 120), "replace")
    result = harness.export("r2", rows(harness.platform, 70, 1000), "replace")
    assert result["rows_sent"] == 70 and member_count(harness.fake) == 70


def test_failed_batch_is_retried_alone_and_resumes_after_task_failure(harness):
    data = rows(harness.platform, 230)
    calls = {"n": 0}
    original = harness.fake.route

    def flaky(request, fault):
        if harness.fake.is_data_request(request):
            calls["n"] += 1
            if calls["n"] >= 3:  # batches 1-2 pass; batch 3 fails on every attempt
                return Response(503, {"message": "unavailable"})
        return original(request, fault)

    harness.fake.route = flaky
    with pytest.raises(PlatformError, match="failed after 4 attempt") as caught:
        harness.export("r1", data)
    assert not isinstance(caught.value, AirflowFailException)  # Airflow retries the task
    assert calls["n"] == 6 and len(harness.fake.received_rows("add")) == 100
    harness.fake.route = original
    result = harness.export("r1", data)  # the task's retry
    assert result["batches_resumed"] == 2 and result["batches"] == 3
    assert len(harness.fake.received_rows("add")) == 230  # no acknowledged row sent twice
    assert member_count(harness.fake) == 230


def test_batches_in_flight_send_every_row_once_and_resume_what_was_not_acknowledged(harness):
    """Several batches at once: every row once, never more requests at once than asked, and
    when one batch fails the others in flight are still acknowledged, so the task's retry sends
    exactly the batches that were not."""
    in_flight = 3
    data = rows(harness.platform, 500)  # 10 batches
    marker = next(v for v in harness.platform.row(175).values() if isinstance(v, str))
    original = harness.fake.route
    failed = []

    def failing_batch_4(request, fault):
        if harness.fake.is_data_request(request) and marker.encode() in request.raw:
            failed.append(request)
            return Response(400, {"message": "refused"})
        return original(request, fault)

    harness.fake.route = failing_batch_4
    # Batches overlap: each call outlasts the spacing of a paced per-second limit (~0.1 s).
    harness.fake.slow_seconds = 0.3
    # Real time: the rate limiter must pace concurrent calls as the fake counts them.
    harness.monkeypatch.setattr(AudienceHook, "clock", SYSTEM)
    with pytest.raises(PlatformError):
        harness.export("r1", data, in_flight=in_flight)
    assert failed and 2 <= harness.fake.max_in_flight <= in_flight
    first_try = len(harness.fake.received_rows("add"))
    # Batches 1-3 were acknowledged; later ones may have gone while batch 4 was being retried,
    # but not all of them, and batch 4's rows never.
    assert 150 <= first_try < 450 and first_try % BATCH == 0
    assert marker not in {str(v) for r in harness.fake.received_rows("add") for v in r.values()}
    harness.fake.route = original
    result = harness.export("r1", data, in_flight=in_flight)  # the task's retry
    assert result["batches_resumed"] == first_try // BATCH
    assert result["batches"] == 10 - first_try // BATCH
    assert len(harness.fake.received_rows("add")) == 500 and sent_twice(harness.fake) == 0
    assert member_count(harness.fake) == 500 and harness.fake.contract_errors == []


@pytest.mark.parametrize("fault", ["throttle", "throttle_no_retry_after", "server_error", "reset"])
def test_transient_faults_are_retried_with_time_injected(harness, fault):
    harness.fake.inject(fault, times=2, retry_after=30, regain_minutes=1)
    started = time.monotonic()
    data = rows(harness.platform, 120)
    result = harness.export("r1", data)
    assert result["rows_sent"] == 120 and member_count(harness.fake) == 120
    assert sent_twice(harness.fake) == 0 and harness.fake.contract_errors == []
    assert time.monotonic() - started < 20  # the waits were skipped, not slept
    if fault == "throttle":
        assert harness.fake.throttled == 2
        assert sum(harness.clock.slept) >= 2 * 30  # the platform's wait, honoured twice
    elif fault == "throttle_no_retry_after":
        assert harness.fake.throttled == 2 and harness.clock.slept


def test_partial_acceptance_is_counted(harness):
    harness.fake.inject("partial", times=1, reject=3)
    result = harness.export("r1", rows(harness.platform, 120))
    # Attentive reports per-member outcomes only hours later, in its job's result file.
    expected = 0 if harness.platform.dtype == "attentive" else 3
    assert result["platform_invalid"] == expected
    assert member_count(harness.fake) == 117


def _permanent(harness: Harness) -> PermanentPlatformError:
    with pytest.raises(PermanentPlatformError) as caught:
        harness.export("r1", rows(harness.platform, 120))
    error = caught.value
    # AirflowFailException: the task fails on try 1 whatever the campaign's retries.
    assert isinstance(error, AirflowFailException)
    assert f"{REGISTRY[harness.platform.dtype].label} (plat)" in str(error)
    assert FIXES[error.kind] in str(error)
    return error


def test_permanent_wrong_credentials_end_the_task_on_try_1(harness):
    harness.connect(secret="wrong-secret")
    assert _permanent(harness).kind == "credentials"
    assert len(harness.fake.requests) == 1  # refused once, never retried
    assert harness.fake.received == []


def test_permanent_missing_permission_ends_the_task_on_try_1(harness):
    harness.answer_data_requests(lambda request: harness.platform.forbidden)
    error = _permanent(harness)
    assert error.kind == "permission"
    assert len(harness.data_requests()) == 1


def test_permanent_missing_audience_ends_the_task_on_try_1(harness):
    if harness.platform.missing_kind is None:
        pytest.skip("no audience object to lose")
    harness.answer_data_requests(lambda request: harness.platform.missing)
    assert _permanent(harness).kind == harness.platform.missing_kind
    assert len(harness.data_requests()) == 1


def test_permanent_contract_violation_ends_the_task_on_try_1(harness):
    def refuse(request):
        raise ContractError("refused by the contract")

    harness.answer_data_requests(refuse)
    assert _permanent(harness).kind == "contract"
    assert len(harness.data_requests()) == 1


def test_missing_connection_field_is_permanent(harness, monkeypatch):
    set_connection(monkeypatch, "plat", harness.platform.dtype, host=harness.url)
    error = _permanent(harness)
    assert error.kind == "config" and "connection 'plat'" in str(error)


def test_test_connection_button_works_against_the_fake(harness):
    ok, message = hook_class(harness.platform)("plat").test_connection()
    assert ok, message
    harness.connect(secret="wrong-secret")
    ok, message = hook_class(harness.platform)("plat").test_connection()
    assert not ok and FIXES["credentials"] in message
    assert harness.fake.received == []


def test_no_identifiers_in_logs(harness, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    harness.fake.inject("throttle", retry_after=0)
    harness.fake.inject("partial", reject=2)
    first = rows(harness.platform, 120)
    harness.export("r1", first, "mirror" if "mirror" in harness.platform.modes else "add")
    harness.fake.inject("server_error")
    harness.export("r2", first[20:], "mirror" if "mirror" in harness.platform.modes else "add")
    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err
    values = {str(v) for r in first for k, v in r.items() if v and k != "__customer_id"}
    assert not [v for v in values if v in text]


# --- the batches resume depends on -------------------------------------------------------
def _project(tmp: Path, monkeypatch, customers: list[tuple[str, str]]) -> list[list[dict]]:
    """Build and project a one-group audience from ``customers`` (in that physical order),
    and return the batches an export would cut."""
    tmp.mkdir()
    db = tmp / "source.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE customers (customer_id VARCHAR, email VARCHAR)")
    con.executemany("INSERT INTO customers VALUES (?, ?)", customers)
    con.close()
    monkeypatch.setenv("AIRFLOW_CONN_PROJ_DB", f'{{"conn_type": "duckdb", "host": "{db}"}}')
    plan = one_group_plan("klaviyo", {"email": "email"})
    doc = plan.campaign.model_dump()
    doc["source"] = {"conn_id": "proj_db", "table": "customers", "customer_id": "customer_id"}
    plan = build_plan(Campaign.model_validate(doc))
    staging = Staging(str(tmp / "staging"))
    layout = RunLayout("d", "r")
    build_audience(
        plan, DuckDBHook(duckdb_conn_id="proj_db"), staging, layout, batch_rows=7,
        memory_limit="256MB",
    )  # fmt: skip
    (group,) = plan.groups
    output = project_group(plan, group, staging, layout, memory_limit="256MB")
    path = Path(staging.root) / output.destinations[DEST].path
    return [batch for _, batch in iter_batches(path, max_rows=BATCH, read_rows=13)]


def test_reprojecting_the_same_audience_gives_identical_batches(tmp_path, monkeypatch):
    customers = [(f"C{(i * 7919) % 1000:04d}", f"user{i}@example.com") for i in range(1000)]
    first = _project(tmp_path / "a", monkeypatch, customers)
    second = _project(tmp_path / "b", monkeypatch, list(reversed(customers)))
    assert len(first) == 20 and first == second


# --- the kit's pieces ----------------------------------------------------------------------
def test_rate_limiter_paces_short_windows_and_keeps_long_bursts():
    from campaign_sync.platforms.ratelimit import RateLimiter

    clock = FakeClock()
    per_second = RateLimiter([(10, 1.0)], clock=clock.monotonic, sleep=clock.sleep)
    start = clock.monotonic()
    grants = []
    for _ in range(12):
        per_second.acquire()
        grants.append(clock.monotonic() - start)
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert all(g >= 0.1 - 1e-3 for g in gaps)  # evenly spaced, never a burst
    assert sum(1 for t in grants if t < 1.0) <= 10
    per_minute = RateLimiter([(80, 60.0)], clock=clock.monotonic, sleep=clock.sleep)
    start, sleeps = clock.monotonic(), len(clock.slept)
    for _ in range(80):
        per_minute.acquire()
    assert len(clock.slept) == sleeps  # a minute's allowance is granted at once
    per_minute.acquire()
    assert clock.monotonic() - start >= 60.0
    per_minute.pause_for(5.0)
    before = clock.monotonic()
    per_minute.acquire()
    assert clock.monotonic() - before >= 5.0


def test_rate_limiter_keeps_windows_longer_by_the_held_up_time():
    from campaign_sync.platforms.ratelimit import MAX_HELD_UP, RateLimiter

    clock = FakeClock()
    # Batches in flight: a granted call may reach the platform up to 50 ms late.
    limiter = RateLimiter([(10, 1.0)], held_up=0.05, clock=clock.monotonic, sleep=clock.sleep)
    start = clock.monotonic()
    assert not clock.slept
    grants = []
    for _ in range(31):
        limiter.acquire()
        grants.append(clock.monotonic() - start)
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert all(g >= 0.105 - 1e-3 for g in gaps)  # paced over 1.05 s, not 1 s
    # Any call arriving up to 50 ms late still leaves 10 calls at most in any 1 s window.
    for late in range(len(grants)):
        arrivals = sorted(t + (0.05 if i == late else 0.0) for i, t in enumerate(grants))
        assert all(arrivals[i + 10] - arrivals[i] >= 1.0 - 1e-9 for i in range(len(arrivals) - 10))
    # ... waiting no more than that: 95% of the limit, where one call less a second would
    # leave 90% (real time passing meanwhile only shortens the waits).
    assert sum(clock.slept) <= 30 * 0.105 + 1e-6
    # A refusal for the rate means calls arrived later than that: allow for twice as late.
    limiter.refused()
    assert limiter.held_up == 0.1
    before = clock.monotonic()
    limiter.acquire()
    limiter.acquire()
    assert clock.monotonic() - before >= 0.11 - 1e-6
    for _ in range(5):
        limiter.refused()
    assert limiter.held_up == MAX_HELD_UP
    alone = RateLimiter([(10, 1.0)], clock=clock.monotonic, sleep=clock.sleep)
    alone.refused()
    assert alone.held_up == 0.0  # one call at a time: none is held up behind another
    longer = RateLimiter([(3, 60.0)], held_up=0.05, clock=clock.monotonic, sleep=clock.sleep)
    start = clock.monotonic()
    for _ in range(4):
        longer.acquire()
    assert clock.monotonic() - start >= 60.05 - 1e-6  # a minute's burst, then its window


def test_batches_in_flight_keep_the_heap_out_of_full_collections(tmp_path):
    import gc

    from campaign_sync.hooks.audience import BatchResult
    from campaign_sync.platforms.checkpoint import Checkpoint
    from campaign_sync.platforms.sender import BatchSender

    frozen = []

    def call() -> BatchResult:
        frozen.append(gc.get_freeze_count())
        return BatchResult(received=1)

    for in_flight in (1, 2):
        sender = BatchSender(Checkpoint(Staging(str(tmp_path)), f"ck{in_flight}", "x"),
                             in_flight=in_flight)  # fmt: skip
        assert gc.get_freeze_count() == 0
        frozen.clear()
        sender.send_all((f"add:{n}", call) for n in range(1, 5))
        # What was alive when the batches started is frozen while they are sent, and unfrozen
        # after (the task's later garbage is collected as before).
        assert len(frozen) == 4 and all(n > 0 for n in frozen)
        assert gc.get_freeze_count() == 0 and sender.stats["batches"] == 4


def test_paginate_follows_cursors_and_refuses_a_loop():
    pages = {None: ([1, 2], "a"), "a": ([3], "b"), "b": ([4], None)}
    assert list(paginate(lambda cursor: pages[cursor], what="test")) == [1, 2, 3, 4]
    looping = {None: ([1], "a"), "a": ([2], "a")}
    with pytest.raises(PlatformError, match="cursor 'a' twice"):
        list(paginate(lambda cursor: looping[cursor], what="test"))


def test_permanent_errors_survive_pickling_with_their_class():
    error = PermanentPlatformError("Braze (plat): refused", kind="credentials", status=401)
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, AirflowFailException) and str(again) == str(error)
    assert (again.kind, again.status) == ("credentials", 401)


def test_a_declared_mode_without_its_method_fails_at_import():
    with pytest.raises(TypeError, match="declares 'mirror' without remove"):

        class Incomplete(AudienceHook):
            conn_type = "klaviyo"

            def add(self, audience_id, rows):
                raise AssertionError("never called")
