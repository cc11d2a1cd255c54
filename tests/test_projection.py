"""Projection of a group's staged audience for its destinations (projection.project)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from campaign_sync.audience.build import build_audience
from campaign_sync.hooks.duckdb import DuckDBHook
from campaign_sync.layout import RunLayout
from campaign_sync.plan import CampaignPlan, build_plan
from campaign_sync.projection.project import (
    GroupOutput,
    project_group,
)
from campaign_sync.spec.checks import check_campaign
from campaign_sync.spec.model import Campaign
from campaign_sync.staging import Staging

MEMORY = "256MB"
RUN_ID = "manual__2026-01-01"
LAYOUT = RunLayout("proj_dag", RUN_ID)
RUN_REL = LAYOUT.folder
RECIPIENTS_FILE = RunLayout.RECIPIENTS_FILE
REJECTED_FILE = RunLayout.REJECTED_FILE
HEX64 = re.compile(r"^[0-9a-f]{64}$")

IDFA_OK = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
AAID_OK = "3f1c2b9e-0d4a-4c8e-9b7a-1e2d3c4b5a69"
ZERO_ID = "00000000-0000-0000-0000-000000000000"
PREHASHED = hashlib.sha256(b"hashed@example.com").hexdigest()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


COLUMN_NAMES = [
    "customer_id", "seg", "email", "phone", "given_name", "state", "postal", "gender",
    "birthdate", "apple_ad_id", "android_ad_id",
]  # fmt: skip
COLUMNS = (
    "customer_id VARCHAR, seg VARCHAR, email VARCHAR, phone VARCHAR, given_name VARCHAR,"
    " state VARCHAR, postal VARCHAR, gender VARCHAR, birthdate DATE,"
    " apple_ad_id VARCHAR, android_ad_id VARCHAR"
)


def _row(customer_id: str, seg: str, **values: Any) -> tuple[Any, ...]:
    values.update(customer_id=customer_id, seg=seg)
    return tuple(values.get(c) for c in COLUMN_NAMES)


ROWS = [
    _row(
        "c01", "main", email=" Alice@Example.COM ", phone="(415) 555-0134", given_name="Alice",
        state="California", postal="94105-1234", gender="F", birthdate=date(1985, 3, 7),
        apple_ad_id=IDFA_OK, android_ad_id=AAID_OK,
    ),
    _row(
        "c02", "main", phone="415.555.0135", given_name="Bob", state="Calif", postal="94105",
        gender="x",
    ),
    _row("c03", "main", email="not-an-email", phone="+1 415 555 0136", given_name="Cy"),
    _row("c04", "main", email="dan@example.com", phone="n/a", given_name="Dan"),
    _row("c05", "main", email="eve@example.com", given_name="Eve"),
    _row("c06", "main", email="   ", phone="555-01", given_name="Fay"),
    _row(
        "c07", "main", email="gil@example.com", phone="(415) 555-0137", given_name="Gil",
        apple_ad_id="not-an-idfa", android_ad_id=ZERO_ID,
    ),
    _row("c08", "main", email=PREHASHED.upper(), phone="(415) 555-0138", given_name="Hal"),
    _row("c09", "main", email="Bob+News@Example.com", phone="1-415-555-0139"),
    _row("c10", "ctl", email="ctl1@example.com", phone="(415) 555-0140", given_name="Ctl"),
    _row("c11", "ctl"),
]  # fmt: skip
MAIN = {r[0] for r in ROWS if r[1] == "main"}
CTL = {r[0] for r in ROWS if r[1] == "ctl"}

DESTINATIONS: dict[str, Any] = {
    "klaviyo": {
        "type": "klaviyo",
        "conn_id": "klaviyo_default",
        "dry_run": True,
        "attributes": {
            "email": "email",
            "customer_id": "external_id",
            "phone": "phone_number",
            "given_name": "first_name",
        },
    },
    "attentive": {
        "type": "attentive",
        "conn_id": "attentive_default",
        "dry_run": True,
        "attributes": {"phone": "phone"},
    },
    "criteo": {
        "type": "criteo",
        "conn_id": "criteo_default",
        "dry_run": True,
        "attributes": {"email": "email"},
    },
    "tiktok": {
        "type": "tiktok_ads",
        "conn_id": "tiktok_default",
        "dry_run": True,
        "attributes": {
            "email": "EMAIL",
            "phone": "PHONE",
            "apple_ad_id": "IDFA",
            "android_ad_id": "AAID",
        },
    },
    "facebook": {
        "type": "facebook_ads",
        "conn_id": "facebook_default",
        "dry_run": True,
        "attributes": {
            "email": "EMAIL",
            "phone": "PHONE",
            "given_name": "FN",
            "state": "ST",
            "postal": "ZIP",
            "birthdate": "DOBY",
            "gender": "GEN",
        },
    },
    "files": {
        "type": "local",
        "attributes": {"customer_id": "customer_id", "email": "email", "phone": "phone"},
    },
}
ALL_DESTS = ["klaviyo", "attentive", "criteo", "tiktok", "facebook", "files"]


def _doc(**source_extra: Any) -> dict[str, Any]:
    return {
        "name": "projection test",
        "source": {"conn_id": "proj_db", "table": "customers", **source_extra},
        "sub_audiences": [
            {
                "name": "held out",
                "condition": "seg = 'ctl'",
                "treatment_groups": [{"name": "control", "percentage": 100, "control": True}],
            },
            {
                "name": "main",
                "condition": "TRUE",
                "treatment_groups": [
                    {"name": "treatment", "percentage": 100, "destinations": ALL_DESTS}
                ],
            },
        ],
        "destinations": DESTINATIONS,
    }


def _plan(doc: dict[str, Any]) -> CampaignPlan:
    campaign = Campaign.model_validate(doc)
    assert check_campaign(campaign) == []
    return build_plan(campaign)


def _make_db(path: Path, rows: list[tuple[Any, ...]]) -> Path:
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE customers ({COLUMNS})")
    con.executemany(f"INSERT INTO customers VALUES ({', '.join('?' for _ in rows[0])})", rows)
    con.close()
    return path


def _hook(monkeypatch: pytest.MonkeyPatch, db: Path) -> DuckDBHook:
    monkeypatch.setenv("AIRFLOW_CONN_PROJ_DB", json.dumps({"conn_type": "duckdb", "host": str(db)}))
    return DuckDBHook(duckdb_conn_id="proj_db")


class Projected:
    """Build the audience once and project both groups."""

    def __init__(self, root: Path, plan: CampaignPlan, hook: DuckDBHook) -> None:
        self.root = root
        self.plan = plan
        staging = Staging(str(root))
        self.summary = build_audience(
            plan, hook, staging, LAYOUT, batch_rows=4, memory_limit=MEMORY
        )
        self.outputs: dict[str, GroupOutput] = {
            g.group_id: project_group(plan, g, staging, LAYOUT, memory_limit=MEMORY)
            for g in plan.groups
        }

    def folder(self, group_id: str) -> Path:
        return self.root / RUN_REL / "groups" / group_id

    def dest_rows(self, dest: str) -> dict[str, dict[str, Any]]:
        table = pq.read_table(self.folder("main__treatment") / "destinations" / f"{dest}.parquet")
        return {r["__customer_id"]: r for r in table.to_pylist()}

    def rejected(self) -> list[tuple[str, str, str]]:
        table = pq.read_table(self.folder("main__treatment") / REJECTED_FILE)
        return sorted((r["customer_id"], r["destination"], r["reason"]) for r in table.to_pylist())


@pytest.fixture(scope="module")
def projected(tmp_path_factory) -> Iterator[Projected]:
    """Built once for the module; tests only read it (or rewrite it identically)."""
    tmp = tmp_path_factory.mktemp("projection")
    db = _make_db(tmp / "proj.duckdb", ROWS)
    with pytest.MonkeyPatch.context() as mp:
        yield Projected(tmp / "staging", _plan(_doc()), _hook(mp, db))


EXPECTED_REJECTED = {
    "klaviyo": {
        "c02": "email missing",
        "c03": "email invalid",
        "c06": "email missing",
        "c08": "email invalid",  # a digest is not an address Klaviyo can use
    },
    "attentive": {"c04": "phone invalid", "c05": "phone missing", "c06": "phone invalid"},
    "criteo": {"c02": "email missing", "c03": "email invalid", "c06": "email missing"},
    "tiktok": {
        "c02": "EMAIL missing",
        "c03": "EMAIL invalid",
        "c04": "PHONE invalid",
        "c05": "PHONE missing",
        "c06": "EMAIL missing",
    },
    "facebook": {"c06": "no valid identifier among EMAIL, PHONE"},
    "files": {},
}
EXPECTED_CLEARED = {
    "klaviyo": {"phone_number": 1},
    "attentive": {},
    "criteo": {},
    "tiktok": {"IDFA": 1, "AAID": 1},
    "facebook": {"EMAIL": 1, "PHONE": 1, "GEN": 1},
    "files": {},
}


def test_audience_summary(projected):
    assert projected.summary.group_members == {"held_out__control": 2, "main__treatment": 9}


@pytest.mark.parametrize("dest", ALL_DESTS)
def test_destination_rows_and_rejections(projected, dest):
    out = projected.outputs["main__treatment"]
    assert out.members == 9
    assert out.is_control is False
    d = out.destinations[dest]
    rejected = EXPECTED_REJECTED[dest]
    sent = projected.dest_rows(dest)
    assert set(sent) == MAIN - set(rejected)
    assert not set(sent) & set(rejected)
    assert d.rows == len(sent)
    assert d.rejected == len(rejected)
    assert d.rows + d.rejected == out.members
    reasons: dict[str, int] = {}
    for r in rejected.values():
        reasons[r] = reasons.get(r, 0) + 1
    assert d.rejected_by_reason == reasons
    assert d.values_cleared == EXPECTED_CLEARED[dest]
    assert d.path == f"{RUN_REL}/groups/main__treatment/destinations/{dest}.parquet"
    assert (projected.root / d.path).is_file()


def test_rejected_file(projected):
    expected = sorted(
        (cid, dest, reason)
        for dest, rej in EXPECTED_REJECTED.items()
        for cid, reason in rej.items()
    )
    assert projected.rejected() == expected


def test_rejected_rows_still_go_where_the_field_is_not_needed(projected):
    files = projected.dest_rows("files")
    assert set(files) == MAIN
    # passthrough: the local destination gets source values exactly as they are
    assert files["c01"]["email"] == " Alice@Example.COM "
    assert files["c02"]["email"] is None
    assert files["c06"]["email"] == "   "
    assert files["c06"]["phone"] == "555-01"
    assert files["c04"]["customer_id"] == "c04"
    # no phone is needed by Klaviyo/Criteo; no email by Attentive
    assert {"c04", "c05"} <= set(projected.dest_rows("klaviyo"))
    assert {"c04", "c05"} <= set(projected.dest_rows("criteo"))
    assert {"c02", "c03"} <= set(projected.dest_rows("attentive"))
    assert {"c02", "c03", "c04", "c05"} <= set(projected.dest_rows("facebook"))


def test_destination_columns(projected):
    def names(dest: str) -> list[str]:
        folder = projected.folder("main__treatment") / "destinations"
        return pq.read_schema(folder / f"{dest}.parquet").names

    assert names("klaviyo") == [
        "__customer_id",
        "email",
        "external_id",
        "phone_number",
        "first_name",
    ]
    assert names("attentive") == ["__customer_id", "phone"]
    assert names("criteo") == ["__customer_id", "email"]
    assert names("tiktok") == ["__customer_id", "EMAIL", "PHONE", "IDFA", "AAID"]
    assert names("facebook") == [
        "__customer_id",
        "EMAIL",
        "PHONE",
        "FN",
        "ST",
        "ZIP",
        "DOBY",
        "GEN",
    ]
    assert names("files") == ["__customer_id", "customer_id", "email", "phone"]


def test_plain_values(projected):
    klaviyo = projected.dest_rows("klaviyo")
    assert klaviyo["c01"]["email"] == "alice@example.com"
    assert klaviyo["c01"]["phone_number"] == "+14155550134"
    assert klaviyo["c01"]["external_id"] == "c01"
    assert klaviyo["c01"]["first_name"] == "Alice"
    assert klaviyo["c09"]["email"] == "bob+news@example.com"
    assert klaviyo["c09"]["phone_number"] == "+14155550139"
    assert klaviyo["c09"]["first_name"] is None
    # invalid optional phone: the row is sent with NULL there
    assert klaviyo["c04"]["phone_number"] is None
    assert klaviyo["c05"]["phone_number"] is None
    attentive = projected.dest_rows("attentive")
    assert attentive["c02"]["phone"] == "+14155550135"
    assert attentive["c03"]["phone"] == "+14155550136"


def test_hashed_values(projected):
    criteo = projected.dest_rows("criteo")
    assert {k: v["email"] for k, v in criteo.items()} == {
        "c01": sha("alice@example.com"),
        "c04": sha("dan@example.com"),
        "c05": sha("eve@example.com"),
        "c07": sha("gil@example.com"),
        "c08": PREHASHED,  # already hashed: passed through lowercased, not re-hashed
        "c09": sha("bob+news@example.com"),
    }
    tiktok = projected.dest_rows("tiktok")
    assert tiktok["c01"] == {
        "__customer_id": "c01",
        "EMAIL": sha("alice@example.com"),
        "PHONE": sha("+14155550134"),
        "IDFA": sha(IDFA_OK.lower()),
        "AAID": sha(AAID_OK),
    }
    assert tiktok["c09"]["EMAIL"] == sha("bob@example.com")  # +tag dropped for TikTok
    assert tiktok["c08"]["EMAIL"] == PREHASHED
    # invalid optional ad ids are cleared, the row is still sent
    assert tiktok["c07"]["IDFA"] is None
    assert tiktok["c07"]["AAID"] is None
    assert tiktok["c07"]["EMAIL"] == sha("gil@example.com")
    facebook = projected.dest_rows("facebook")
    assert facebook["c01"] == {
        "__customer_id": "c01",
        "EMAIL": sha("alice@example.com"),
        "PHONE": sha("14155550134"),  # Meta: digits with country code, no '+'
        "FN": sha("alice"),
        "ST": sha("ca"),
        "ZIP": sha("94105"),
        "DOBY": sha("1985"),
        "GEN": sha("f"),
    }
    # 'Calif' is no US state name: kept as Meta asks for states outside the US (lowercase,
    # no punctuation or spaces), not cleared.
    assert facebook["c02"]["ST"] == sha("calif")
    assert facebook["c02"]["GEN"] is None
    assert facebook["c03"]["EMAIL"] is None
    assert facebook["c03"]["PHONE"] == sha("14155550136")
    assert facebook["c04"]["PHONE"] is None


@pytest.mark.parametrize(
    ("dest", "columns"),
    [
        ("criteo", ["email"]),
        ("tiktok", ["EMAIL", "PHONE", "IDFA", "AAID"]),
        ("facebook", ["EMAIL", "PHONE", "FN", "ST", "ZIP", "DOBY", "GEN"]),
    ],
)
def test_hashed_columns_are_lowercase_hex(projected, dest, columns):
    for row in projected.dest_rows(dest).values():
        for column in columns:
            value = row[column]
            assert value is None or HEX64.match(value), (dest, column, value)


def test_recipients_of_a_treatment_group(projected):
    table = pq.read_table(projected.folder("main__treatment") / RECIPIENTS_FILE)
    rows = table.to_pylist()
    expected_pairs = sorted(
        (cid, dest) for dest in ALL_DESTS for cid in MAIN - set(EXPECTED_REJECTED[dest])
    )
    assert sorted((r["customer_id"], r["destination"]) for r in rows) == expected_pairs
    assert len(rows) == sum(
        d.rows for d in projected.outputs["main__treatment"].destinations.values()
    )
    for r in rows:
        assert r["is_control"] is False
        assert r["campaign"] == "projection test"
        assert r["dag_id"] == "projection_test"
        assert r["run_id"] == RUN_ID
        assert r["sub_audience"] == "main"
        assert r["treatment_group"] == "treatment"


def test_control_group(projected):
    out = projected.outputs["held_out__control"]
    assert out.is_control is True
    assert out.members == 2
    assert out.destinations == {}
    folder = projected.folder("held_out__control")
    assert out.path == f"{RUN_REL}/groups/held_out__control"
    assert sorted(p.name for p in folder.rglob("*")) == [RECIPIENTS_FILE]
    rows = pq.read_table(folder / RECIPIENTS_FILE).to_pylist()
    assert sorted(r["customer_id"] for r in rows) == sorted(CTL)
    for r in rows:
        assert r["is_control"] is True
        assert r["destination"] is None
        assert r["sub_audience"] == "held out"
        assert r["treatment_group"] == "control"
        assert r["run_id"] == RUN_ID


def test_group_output_is_xcom_friendly(projected):
    out = projected.outputs["main__treatment"].to_xcom()
    json.dumps(out)
    assert out["group_id"] == "main__treatment"
    assert out["destinations"]["criteo"]["rows"] == 6


def test_projecting_again_replaces_the_group_folder(projected):
    folder = projected.folder("main__treatment")
    (folder / "destinations" / "stale.parquet").write_bytes(b"old")
    plan = projected.plan
    group = plan.group("main__treatment")
    again = project_group(plan, group, Staging(str(projected.root)), LAYOUT, memory_limit=MEMORY)
    assert again == projected.outputs["main__treatment"]
    assert not (folder / "destinations" / "stale.parquet").exists()
    assert sorted(p.name for p in (projected.root / RUN_REL / "groups").iterdir()) == [
        "held_out__control",
        "main__treatment",
    ]


def test_phone_country_code_applies_to_national_numbers(tmp_path, monkeypatch):
    rows = [
        _row("u1", "main", email="a@example.com", phone="020 7946 0958"),
        _row("u2", "main", email="b@example.com", phone="+1 415 555 0134"),
        _row("u3", "main", email="c@example.com", phone="(415) 555-0134"),
    ]
    db = _make_db(tmp_path / "uk.duckdb", rows)
    doc = _doc(phone_country_code="44")
    doc["sub_audiences"][1]["treatment_groups"][0]["destinations"] = ["attentive", "facebook"]
    p = Projected(tmp_path / "staging", _plan(doc), _hook(monkeypatch, db))
    attentive = p.dest_rows("attentive")
    assert {k: v["phone"] for k, v in attentive.items()} == {
        "u1": "+442079460958",
        "u2": "+14155550134",
    }
    assert p.outputs["main__treatment"].destinations["attentive"].rejected_by_reason == {
        "phone invalid": 1
    }
    assert p.dest_rows("facebook")["u1"]["PHONE"] == sha("442079460958")


def test_group_with_only_an_open_destination(tmp_path, monkeypatch):
    db = _make_db(tmp_path / "open.duckdb", ROWS)
    doc = _doc()
    doc["sub_audiences"][1]["treatment_groups"][0]["destinations"] = ["files"]
    p = Projected(tmp_path / "staging", _plan(doc), _hook(monkeypatch, db))
    out = p.outputs["main__treatment"]
    assert out.destinations["files"].rows == 9
    assert out.destinations["files"].rejected == 0
    assert pq.read_table(p.folder("main__treatment") / REJECTED_FILE).num_rows == 0
    assert pq.read_table(p.folder("main__treatment") / RECIPIENTS_FILE).num_rows == 9


def test_empty_group_projects_to_empty_files(tmp_path, monkeypatch):
    db = _make_db(tmp_path / "empty.duckdb", [r for r in ROWS if r[1] == "ctl"])
    p = Projected(tmp_path / "staging", _plan(_doc()), _hook(monkeypatch, db))
    out = p.outputs["main__treatment"]
    assert out.members == 0
    for dest in ALL_DESTS:
        assert (out.destinations[dest].rows, out.destinations[dest].rejected) == (0, 0)
        assert p.dest_rows(dest) == {}
    assert pq.read_table(p.folder("main__treatment") / RECIPIENTS_FILE).num_rows == 0


def test_destination_named_to_escape_stays_in_its_group_folder(tmp_path, monkeypatch):
    """A destination name with ``../`` never reaches a path: projection writes the destination's
    rows inside its group's folder, under the slug of the name. (The name is put in after
    loading, since loading may refuse it.)"""
    import dataclasses

    hook = _hook(monkeypatch, _make_db(tmp_path / "proj.duckdb", ROWS))
    doc = _doc()
    doc["sub_audiences"][1]["treatment_groups"][0]["destinations"] = ["files"]
    plan = _plan(doc)
    hostile = "../../../escaped"
    plan.campaign.destinations[hostile] = plan.campaign.destinations.pop("files")
    plan = dataclasses.replace(
        plan,
        groups=tuple(
            dataclasses.replace(g, destinations=(hostile,) if g.destinations else ())
            for g in plan.groups
        ),
    )
    root = tmp_path / "a" / "b" / "staging"
    staging = Staging(str(root))
    build_audience(plan, hook, staging, LAYOUT, batch_rows=4, memory_limit=MEMORY)

    out = project_group(plan, plan.group("main__treatment"), staging, LAYOUT, memory_limit=MEMORY)

    expected = f"{RUN_REL}/groups/main__treatment/destinations/escaped.parquet"
    assert out.destinations[hostile].path == expected
    assert pq.read_table(root / expected).num_rows == out.destinations[hostile].rows > 0
    written = {p for p in tmp_path.rglob("*") if p.is_file() and p.name != "proj.duckdb"}
    assert written and all(p.is_relative_to(root / RUN_REL) for p in written), written
