"""Tests for the fake Merged Customers generator (campaign_sync.sample_data)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

ROWS = 20_000
MODULE_PATH = Path(__file__).resolve().parents[1] / "plugins" / "campaign_sync" / "sample_data.py"


def _load_module() -> ModuleType:
    # Loaded by path so the test needs neither an installed package nor the package __init__.
    spec = importlib.util.spec_from_file_location("campaign_sync_sample_data", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sample_data = _load_module()

EXPECTED_SCHEMA = [
    ("customer_id", "VARCHAR"),
    ("email", "VARCHAR"),
    ("phone", "VARCHAR"),
    ("given_name", "VARCHAR"),
    ("surname", "VARCHAR"),
    ("birthdate", "DATE"),
    ("gender", "VARCHAR"),
    ("address", "VARCHAR"),
    ("address2", "VARCHAR"),
    ("city", "VARCHAR"),
    ("state", "VARCHAR"),
    ("postal", "VARCHAR"),
    ("country", "VARCHAR"),
    ("lifecycle_status", "VARCHAR"),
    ("predicted_clv", "DOUBLE"),
    ("is_high_value", "BOOLEAN"),
    ("apple_ad_id", "VARCHAR"),
    ("android_ad_id", "VARCHAR"),
    ("email_opt_in", "BOOLEAN"),
    ("sms_opt_in", "BOOLEAN"),
    ("created_at", "TIMESTAMP"),
    ("updated_at", "TIMESTAMP"),
]

UUID_RE = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    path = tmp_path_factory.mktemp("sample") / "customers.duckdb"
    assert sample_data.generate_merged_customers(path, ROWS) == ROWS
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


def _share(con: duckdb.DuckDBPyConnection, predicate: str) -> float:
    return float(
        _one(con, f"SELECT avg(CASE WHEN {predicate} THEN 1.0 ELSE 0.0 END) FROM merged_customers")
    )


def _content(path: Path, table: str = "merged_customers") -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY customer_id").fetchall()


# --- shape -----------------------------------------------------------------------------------


def test_row_count_and_unique_customer_ids(db):
    total, distinct, nulls = db.execute(
        "SELECT count(*), count(DISTINCT customer_id), count(*) - count(customer_id) "
        "FROM merged_customers"
    ).fetchone()
    assert total == ROWS
    assert distinct == ROWS
    assert nulls == 0
    assert _one(
        db, "SELECT bool_and(regexp_full_match(customer_id, 'MC[0-9]{9}')) FROM merged_customers"
    )


def test_customer_ids_are_shuffled(db):
    ids = [r[0] for r in db.execute("SELECT customer_id FROM merged_customers").fetchall()]
    assert ids != sorted(ids)
    assert ids != [f"MC{i:09d}" for i in range(ROWS)]


def test_schema(db):
    described = db.execute("DESCRIBE merged_customers").fetchall()
    assert [(row[0], row[1]) for row in described] == EXPECTED_SCHEMA
    assert [name for name, _ in sample_data.COLUMNS] == [name for name, _ in EXPECTED_SCHEMA]


# --- determinism and atomic writes -----------------------------------------------------------


def test_same_seed_same_content_and_different_seed_differs(tmp_path):
    a, b, c = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "c.duckdb"
    sample_data.generate_merged_customers(a, 5_000, seed=11)
    sample_data.generate_merged_customers(b, 5_000, seed=11)
    sample_data.generate_merged_customers(c, 5_000, seed=12)
    content_a = _content(a)
    assert content_a == _content(b)
    assert content_a != _content(c)


def test_rerun_overwrites_and_leaves_no_tmp(tmp_path):
    path = tmp_path / "nested" / "dir" / "customers.duckdb"  # parent folders are created
    sample_data.generate_merged_customers(path, 3_000, seed=1)
    sample_data.generate_merged_customers(path, 1_500, seed=2, table="customers_b")
    assert path.exists()
    assert not Path(f"{path}.tmp").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["customers.duckdb"]
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        assert tables == ["customers_b"]
        assert con.execute("SELECT count(*) FROM customers_b").fetchone()[0] == 1_500


def test_stale_tmp_file_is_replaced(tmp_path):
    path = tmp_path / "customers.duckdb"
    Path(f"{path}.tmp").write_bytes(b"not a duckdb file")
    assert sample_data.generate_merged_customers(path, 100) == 100
    assert not Path(f"{path}.tmp").exists()
    assert len(_content(path)) == 100


def test_failed_build_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "customers.duckdb"
    sample_data.generate_merged_customers(path, 500, seed=5)
    before = _content(path)

    real_build = sample_data._build_chunk
    calls = []

    def flaky_build(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(sample_data, "CHUNK_ROWS", 200)
    monkeypatch.setattr(sample_data, "_build_chunk", flaky_build)
    with pytest.raises(RuntimeError, match="boom"):
        sample_data.generate_merged_customers(path, 1_000, seed=6)
    assert _content(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.duckdb"]


def test_spans_multiple_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_data, "CHUNK_ROWS", 1_000)
    path = tmp_path / "chunked.duckdb"
    assert sample_data.generate_merged_customers(path, 2_500) == 2_500
    with duckdb.connect(str(path), read_only=True) as con:
        assert (
            con.execute("SELECT count(DISTINCT customer_id) FROM merged_customers").fetchone()[0]
            == 2_500
        )


@pytest.mark.parametrize("rows", [0, -5])
def test_rejects_non_positive_rows(tmp_path, rows):
    with pytest.raises(ValueError, match="rows must be >= 1"):
        sample_data.generate_merged_customers(tmp_path / "x.duckdb", rows)
    assert not (tmp_path / "x.duckdb").exists()


@pytest.mark.parametrize("table", ["", "1abc", "bad-name", "a b", 'x"; DROP TABLE y; --'])
def test_rejects_bad_table_name(tmp_path, table):
    with pytest.raises(ValueError, match="table"):
        sample_data.generate_merged_customers(tmp_path / "x.duckdb", 10, table=table)
    assert not (tmp_path / "x.duckdb").exists()


def test_main_writes_file(tmp_path, capsys):
    path = tmp_path / "cli.duckdb"
    assert sample_data.main(["--rows", "250", "--seed", "3", "--table", "mc", str(path)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"wrote 250 rows to {path} (table mc)"
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM mc").fetchone()[0] == 250


def test_main_reports_bad_rows(tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        sample_data.main(["--rows", "0", str(tmp_path / "x.duckdb")])
    assert excinfo.value.code == 2


# --- distributions and realism ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "target"),
    [("active", 0.35), ("cooling down", 0.25), ("at risk", 0.20), ("lapsed", 0.12), ("new", 0.08)],
)
def test_lifecycle_proportions(db, status, target):
    assert _share(db, f"lifecycle_status = '{status}'") == pytest.approx(target, abs=0.02)


def test_lifecycle_has_no_other_values(db):
    values = {
        r[0]
        for r in db.execute("SELECT DISTINCT lifecycle_status FROM merged_customers").fetchall()
    }
    assert values == {"active", "cooling down", "at risk", "lapsed", "new"}


def test_email_mess(db):
    assert _share(db, "email IS NULL") == pytest.approx(0.05, abs=0.015)
    assert _share(db, "email = ''") == pytest.approx(0.02, abs=0.01)
    assert _share(db, "email <> trim(email)") > 0.02
    assert _share(db, "email <> lower(email)") > 0.02
    assert _share(db, "email LIKE '%+%@%'") > 0.02
    assert _share(db, "email LIKE '%.%@%'") > 0.2
    malformed = (
        "email <> '' AND NOT regexp_full_match(trim(email), '[^@\\s]+@[^@\\s]+\\.[A-Za-z]{2,}')"
    )
    assert _share(db, malformed) == pytest.approx(0.03, abs=0.01)
    assert _share(db, "email LIKE '% at %'") > 0
    assert _share(db, "email NOT LIKE '%@%' AND email <> ''") > 0
    assert _share(db, "email LIKE '%@'") > 0


def test_emails_use_reserved_domains_only(db):
    bad = _one(
        db,
        """
        SELECT count(*) FROM merged_customers
        WHERE regexp_full_match(trim(email), '[^@\\s]+@[^@\\s]+\\.[A-Za-z]{2,}')
          AND NOT regexp_full_match(lower(trim(email)), '.*@([a-z]+\\.)?example\\.(com|net|org)')
    """,
    )
    assert bad == 0


def test_duplicate_emails_are_rare(db):
    dupes = _one(
        db,
        """
        SELECT coalesce(sum(n - 1), 0) FROM (
            SELECT lower(trim(email)) AS e, count(*) AS n FROM merged_customers
            WHERE regexp_full_match(trim(email), '[^@\\s]+@[^@\\s]+\\.[A-Za-z]{2,}')
            GROUP BY 1 HAVING count(*) > 1)
    """,
    )
    assert dupes / ROWS < 0.01


US_PHONE_FORMATS = {
    "paren": r"\([2-9][0-9]{2}\) [2-9][0-9]{2}-[0-9]{4}",
    "dash": r"[2-9][0-9]{2}-[2-9][0-9]{2}-[0-9]{4}",
    "dot": r"[2-9][0-9]{2}\.[2-9][0-9]{2}\.[0-9]{4}",
    "bare": r"[2-9][0-9]{2}[2-9][0-9]{6}",
    "one_dash": r"1-[2-9][0-9]{2}-[2-9][0-9]{2}-[0-9]{4}",
    "plus_spaced": r"\+1 [2-9][0-9]{2} [2-9][0-9]{2} [0-9]{4}",
    "e164": r"\+1[2-9][0-9]{2}[2-9][0-9]{6}",
}
ANY_US_PHONE = "regexp_full_match(phone, '(" + "|".join(US_PHONE_FORMATS.values()) + ")')"


def test_phone_mess(db):
    assert _share(db, "phone IS NULL") == pytest.approx(0.20, abs=0.02)
    for name, pattern in US_PHONE_FORMATS.items():
        assert _share(db, f"regexp_full_match(phone, '{pattern}')") > 0.01, name
    assert _share(db, ANY_US_PHONE) == pytest.approx(0.65, abs=0.03)
    intl = "regexp_full_match(phone, '(\\+|00)(44|49|33)[0-9 ]+')"
    assert _share(db, intl) == pytest.approx(0.10, abs=0.02)
    for junk in ("n/a", "0000000", "12", "+1 (000)", "555-01"):
        assert _share(db, f"phone = '{junk}'") > 0, junk
    junk_share = _share(db, f"phone IS NOT NULL AND NOT {ANY_US_PHONE} AND NOT {intl}")
    assert junk_share == pytest.approx(0.05, abs=0.015)


def test_us_phones_are_fictional(db):
    # Every NANP number uses the 555-0100..0199 block reserved for fiction.
    bad = _one(
        db,
        f"""
        SELECT count(*) FROM merged_customers
        WHERE {ANY_US_PHONE}
          AND NOT regexp_matches(regexp_replace(phone, '[^0-9]', '', 'g'), '55501[0-9]{{2}}$')
    """,
    )
    assert bad == 0


def test_names(db):
    assert _share(db, "given_name IS NULL") == pytest.approx(0.03, abs=0.01)
    assert _share(db, "surname IS NULL") == pytest.approx(0.03, abs=0.01)
    odd = (
        "given_name <> trim(given_name) OR given_name = upper(given_name) "
        "OR given_name = lower(given_name)"
    )
    assert _share(db, odd) == pytest.approx(0.05, abs=0.02)
    surnames = {
        r[0] for r in db.execute("SELECT DISTINCT surname FROM merged_customers").fetchall()
    }
    assert {"O'Brien", "Nguyễn"} <= surnames
    given = {
        r[0] for r in db.execute("SELECT DISTINCT given_name FROM merged_customers").fetchall()
    }
    assert {"José", "Zoë"} <= given


def test_birthdate_and_gender(db):
    assert _share(db, "birthdate IS NULL") == pytest.approx(0.10, abs=0.02)
    as_of = sample_data.AS_OF.date().isoformat()
    lo, hi = db.execute(
        f"SELECT min(date_sub('year', birthdate, DATE '{as_of}')), "
        f"max(date_sub('year', birthdate, DATE '{as_of}')) FROM merged_customers"
    ).fetchone()
    assert 18 <= lo and hi <= 85
    genders = {r[0] for r in db.execute("SELECT DISTINCT gender FROM merged_customers").fetchall()}
    assert genders == {"female", "male", "F", "M", "Female", "non-binary", None}
    assert _share(db, "gender IS NULL") == pytest.approx(0.15, abs=0.02)


def test_location(db):
    assert _share(db, "country = 'US'") > 0.75
    countries = {
        r[0] for r in db.execute("SELECT DISTINCT country FROM merged_customers").fetchall()
    }
    assert {"US", "GB", "DE", "FR", "United States", "us", None} <= countries
    assert _share(db, "regexp_full_match(state, '[A-Z]{2}')") > 0.7
    assert _share(db, "state = 'California'") > 0
    assert _share(db, "regexp_full_match(state, '[a-z]{2}')") > 0
    assert _share(db, "address2 IS NULL") > 0.8
    assert _share(db, "regexp_full_match(postal, '[0-9]{5}')") > 0.6
    assert _share(db, "regexp_full_match(postal, '[0-9]{5}-[0-9]{4}')") > 0.05
    uk_postcode = "regexp_full_match(postal, '[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}')"
    assert _share(db, uk_postcode) > 0
    assert _one(
        db,
        f"SELECT bool_and(country IN ('GB', 'UK', 'United Kingdom') "
        f"OR country IS NULL) FROM merged_customers WHERE {uk_postcode}",
    )


def test_value_and_ids(db):
    assert _one(db, "SELECT min(predicted_clv) FROM merged_customers") >= 0
    assert _share(db, "is_high_value") == pytest.approx(0.30, abs=0.03)
    # The flag marks the top of the CLV distribution.
    max_low, min_high = db.execute(
        "SELECT max(predicted_clv) FILTER (WHERE NOT is_high_value), "
        "min(predicted_clv) FILTER (WHERE is_high_value) FROM merged_customers"
    ).fetchone()
    assert max_low < min_high
    assert _share(db, "apple_ad_id IS NOT NULL") == pytest.approx(0.25, abs=0.02)
    assert _share(db, "android_ad_id IS NOT NULL") == pytest.approx(0.25, abs=0.02)
    assert _share(db, "apple_ad_id IS NOT NULL AND android_ad_id IS NOT NULL") < 0.05
    assert _share(db, f"apple_ad_id = '{ZERO_UUID}'") > 0
    assert _one(
        db,
        f"SELECT bool_and(regexp_full_match(apple_ad_id, '{UUID_RE}') "
        "AND apple_ad_id = upper(apple_ad_id)) FROM merged_customers",
    )
    assert _one(
        db,
        f"SELECT bool_and(regexp_full_match(android_ad_id, '{UUID_RE}') "
        "AND android_ad_id = lower(android_ad_id)) FROM merged_customers",
    )
    assert _one(
        db,
        "SELECT count(DISTINCT apple_ad_id) FROM merged_customers "
        f"WHERE apple_ad_id <> '{ZERO_UUID}'",
    ) == _one(
        db, f"SELECT count(apple_ad_id) FROM merged_customers WHERE apple_ad_id <> '{ZERO_UUID}'"
    )


def test_opt_ins_and_timestamps(db):
    assert _share(db, "email_opt_in") == pytest.approx(0.80, abs=0.02)
    assert _share(db, "sms_opt_in") == pytest.approx(0.55, abs=0.03)
    bad_times = _one(
        db,
        "SELECT count(*) FROM merged_customers WHERE created_at IS NULL "
        "OR updated_at IS NULL OR updated_at < created_at",
    )
    assert bad_times == 0
    assert _one(db, "SELECT max(updated_at) FROM merged_customers") <= sample_data.AS_OF
