"""Fuzzing every normalizer (the DuckDB SQL) against the documented rule, with hypothesis.

Each example draws a batch of raw values, runs the normalizer once over the whole batch in an
in-memory DuckDB, and compares every row, plain and hashed, with the plain-Python reference in
``tests/normalization_reference.py``. A normalizer must equal the reference and never raise.

Runs are bounded by the ``normalizer-fuzz`` profile (set ``NORMALIZER_FUZZ_EXAMPLES`` for a
longer local run). Generated text leaves out surrogates and code points unassigned in Python's
Unicode version: DuckDB's regular expressions use a newer Unicode version, which classes the
characters added since then differently.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator, Sequence
from datetime import date, datetime

import duckdb
import normalization_reference as ref
import pycountry
import pytest
from campaign_sync.destinations import REGISTRY
from campaign_sync.projection import normalize as nz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

settings.register_profile(
    "normalizer-fuzz",
    max_examples=int(os.environ.get("NORMALIZER_FUZZ_EXAMPLES", "30")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("normalizer-fuzz")

FUZZED_KINDS = sorted(nz.KINDS - {"passthrough"})
COUNTRY_CODES = ["1", "44", "49", "33", "353", "61", "91"]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def current_year(con: duckdb.DuckDBPyConnection) -> int:
    # The SQL's "current year" comes from DuckDB's clock; the reference is given the same one.
    return int(con.execute("SELECT year(current_date)").fetchone()[0])


def _run(
    con: duckdb.DuckDBPyConnection, kind: str, values: Sequence[object], sql_type: str, cc: str
) -> list[tuple[object, object]]:
    """(normalized, hashed) for each value, from one query over the whole batch."""
    # Hashing refers to the normalized column by name, as projection does.
    norm = nz.normalize(kind, "x", country_code=cc)
    rows = con.execute(
        f"SELECT i, {norm} AS n, {nz.sha256('x', 'n', kind=kind)} AS h FROM ("
        f" SELECT unnest(l) AS x, unnest(range(len(l))) AS i FROM (SELECT ?::{sql_type}[] AS l))"
        " ORDER BY i",
        [list(values)],
    ).fetchall()
    return [(n, h) for _, n, h in rows]


def _check(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    values: Sequence[object],
    *,
    cc: str,
    current_year: int,
    sql_type: str = "VARCHAR",
) -> None:
    expected_of = ref.for_kind(kind, country_code=cc, current_year=current_year)
    got = _run(con, kind, values, sql_type, cc)
    mismatches = []
    for value, (norm, hashed) in zip(values, got, strict=True):
        expected = expected_of(value)
        raw = value if isinstance(value, str | None) else str(value)
        expected_hash = ref.hashed(raw, expected, derived=kind in ref.DERIVED)
        if (norm, hashed) != (expected, expected_hash):
            mismatches.append(f"{value!r}: SQL {norm!r}, rule {expected!r}")
    assert not mismatches, f"{kind} (country code {cc}):\n" + "\n".join(mismatches[:10])


# ---------------------------------------------------------------------------------------------
# Strategies: realistic values, values slightly off, and anything at all
# ---------------------------------------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=("Cs", "Cn"))
ANY_TEXT = st.text(ANY_CHAR, max_size=24)
BLANKS = st.text(st.sampled_from(" \t\r\n\v\f\u00a0\u2003\u3000\u200b\ufeff\x1f\x85"), max_size=3)
HEX64 = st.text(st.sampled_from(string.hexdigits), min_size=64, max_size=64)
# Characters that trip normalizers: special case mappings, ligatures, look-alikes, combining
# marks, Unicode punctuation and spaces, control characters, non-Latin letters and digits.
TRICKY = st.sampled_from(
    [
        *"\u0130\u0131\u00df\u1e9e\u03a3\u03c3\u03c2\u212a\u212b\u00c5\u01c5\ufb01\u2019",
        *"\u2018\u201c\u201d\u2013\u2014\u00b7\u00ab\u00bb\u00bf\u00a1\u0301\u0308",
        "\u00a0", "\u2003",
        *"\x00\x07@.+-_/()#'",
        "\u00e9", "e\u0301", "\u00f8", "\u00d8", "\u00e6", "\u0153", "\u0142", "\u0111",
        "\u00fe", "\u00f0", "\u0127", "\u014b", "\u00fc", "\u00f1", "\u00e7",
        "\u0416", "\u03bb", "\u6771", "\u0627", "\u0661", "\u0663", "\uff15", "\u00b2",
        "\u216b",
    ]
)  # fmt: skip


def _mixed_text(alphabet: st.SearchStrategy[str], max_size: int = 20) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(alphabet, alphabet, TRICKY), max_size=max_size).map("".join)


@st.composite
def _padded(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> str:
    return draw(BLANKS) + draw(inner) + draw(BLANKS)


@st.composite
def _cased(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> str:
    s = draw(inner)
    return draw(st.sampled_from([s, s.upper(), s.lower(), s.title(), s.swapcase()]))


def _values(*realistic: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    """Realistic values (mostly), padded and cased at random, plus junk, NULLs and digests."""
    good = st.one_of(*realistic)
    return st.one_of(
        _padded(_cased(good)),
        _padded(_cased(good)),
        good,
        ANY_TEXT,
        BLANKS,
        st.none(),
        _padded(HEX64),
    )


LOCAL = _mixed_text(st.sampled_from(string.ascii_letters + string.digits + "._+-"), 12)
LABEL = st.text(
    st.sampled_from(string.ascii_lowercase + string.digits + "-"), min_size=1, max_size=8
)
EMAILS = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    LOCAL,
    st.lists(st.one_of(LABEL, _mixed_text(st.sampled_from("ab")), st.just("")), max_size=3),
    st.one_of(st.sampled_from(["com", "org", "co", "de", "io", "museum"]), LOCAL),
)

DIGIT_STRINGS = st.text(st.sampled_from(string.digits), max_size=18)
SEPARATORS = st.sampled_from(["", " ", "-", ".", "(", ")", "/", " x", "ext."])
PHONES = st.one_of(
    st.builds(
        lambda prefix, groups, seps: prefix + "".join(map(str.__add__, groups, seps)),
        st.sampled_from(["", "", "+", "00", "+1 ", "1-", "0", "+44 (0)", "011 ", "++", "+0"]),
        st.lists(st.text(st.sampled_from(string.digits), min_size=1, max_size=5), max_size=5),
        st.lists(SEPARATORS, min_size=5, max_size=5),
    ),
    DIGIT_STRINGS,
    st.builds(lambda a, e, x: f"({a}) {e}-{x}", DIGIT_STRINGS, DIGIT_STRINGS, DIGIT_STRINGS),
    _mixed_text(st.sampled_from(string.digits + "+-() ")),
)

NAME_CHARS = st.sampled_from(string.ascii_letters + " -'.,")
NAMES = st.one_of(
    st.sampled_from(
        [
            "Alice",
            "Mary Ann",
            "O'Brien",
            "O\u2019Brien",
            "Zoë",
            "Zoe\u0308",
            "Élodie",
            "Müller",
            "İbrahim",
            "Strauß",
            "Ødegaard",
            "Łukasz",
            "Þór",
            "ΣΩΚΡΑΤΗΣ",
            "Иван",
            "山田",
            "محمد",
            "Jean-Luc",
            "St. John",
            "de la Cruz",
            "Nguyễn",
            "D'Angelo III",
            "Smith2",
        ]
    ),
    _mixed_text(NAME_CHARS),
)

US_STATE_NAMES = st.sampled_from(sorted(nz.US_STATES))
STATES = st.one_of(
    US_STATE_NAMES,
    st.builds(lambda n: n.replace(" ", "-"), US_STATE_NAMES),
    st.builds(lambda n: n.replace(" ", "  "), US_STATE_NAMES),
    st.sampled_from(sorted(set(nz.US_STATES.values()))),
    st.sampled_from(
        [
            "N.Y.",
            "Calif.",
            "Île-de-France",
            "Québec",
            "N.S.W.",
            "Baden-Württemberg",
            "São Paulo",
            "東京都",
            "Nordrhein-Westfalen",
            "ON",
            "Dublin 4",
            "Ciudad de México",
            "Zürich",
        ]
    ),
    _mixed_text(NAME_CHARS),
)

POSTCODES = st.one_of(
    st.text(st.sampled_from(string.digits), min_size=4, max_size=10),
    st.builds(lambda a, b: f"{a}-{b}", DIGIT_STRINGS, DIGIT_STRINGS),
    st.sampled_from(
        [
            "94105",
            "94105-1234",
            "941051234",
            "02134",
            "SW1A 1AA",
            "M1 1AE",
            "ec1a 1bb",
            "K1A 0B1",
            "01310-100",
            "100-0001",
            "00-950",
            "D02 X285",
            "75018",
            "10115",
            "94105.",
            "#94105",
        ]
    ),
    _mixed_text(st.sampled_from(string.ascii_letters + string.digits + " -")),
)

COUNTRY_NAMES = st.one_of(
    st.sampled_from(sorted(nz.COUNTRIES)),
    st.sampled_from([c.alpha_2 for c in pycountry.countries]),
    st.sampled_from([c.name for c in list(pycountry.countries)[:40]]),
    st.text(st.sampled_from(string.ascii_letters), min_size=2, max_size=3),
    st.sampled_from(["U.S.", "U.K.", "Deutschland", "España", "México", "XK", "EU", "ZZ", "UK"]),
)

YEARS = st.integers(-50, 12000).map(lambda y: f"{y:04d}")
SMALL = st.integers(0, 40).map(str)
DATES_TEXT = st.one_of(
    st.builds(
        lambda y, m, d, sep: f"{y}{sep}{m}{sep}{d}", YEARS, SMALL, SMALL, st.sampled_from("-/.")
    ),
    st.builds(lambda y, m, d: f"{y}-{m:0>2}-{d:0>2}", YEARS, SMALL, SMALL),
    st.builds(
        lambda d, t: f"{d.isoformat()}{t}",
        st.dates(),
        st.sampled_from(["", " 10:11:12", "T10:11", " 23:59:59+02", " xyz", "Z", " (BC)", " BC"]),
    ),
    st.builds(lambda d: d.strftime("%Y%m%d"), st.dates()),
    st.builds(lambda d: d.strftime("%m/%d/%Y"), st.dates()),
    st.sampled_from(["epoch", "infinity", "-infinity", "today", "now", "1985-03-07 (BC)"]),
)

GENDERS = st.sampled_from(["m", "male", "f", "female", "x", "nonbinary", "mâle", "femme", "u"])

AD_IDS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.just("00000000-0000-0000-0000-000000000000"),
    st.builds(lambda u, c: str(u)[:-1] + c, st.uuids(), st.sampled_from("gz \u00a0G")),
)

STRATEGIES: dict[str, st.SearchStrategy[str | None]] = {
    "text": _values(ANY_TEXT),
    "email": _values(EMAILS),
    "email_no_tag": _values(EMAILS),
    "phone_e164": _values(PHONES),
    "phone_digits": _values(PHONES),
    "meta_name": _values(NAMES),
    "meta_city": _values(NAMES, STATES),
    "first_initial": _values(NAMES),
    "us_state": _values(STATES),
    "postal": _values(POSTCODES),
    "country": _values(COUNTRY_NAMES),
    "gender": _values(GENDERS),
    "birth_year": _values(DATES_TEXT),
    "birth_month": _values(DATES_TEXT),
    "birth_day": _values(DATES_TEXT),
    "mobile_ad_id": _values(AD_IDS),
}


# ---------------------------------------------------------------------------------------------
# The fuzz tests
# ---------------------------------------------------------------------------------------------


def test_fuzz_covers_every_normalizer_and_destination_rule():
    # A new normalizer kind needs a strategy and a reference here, or this fails.
    assert set(STRATEGIES) == set(FUZZED_KINDS)
    for kind in FUZZED_KINDS:
        ref.for_kind(kind, country_code="1", current_year=2000)
    used = {r.kind for d in REGISTRY.values() for r in [*d.attributes.values(), d.extra_rule]}
    assert used - {"passthrough"} <= set(STRATEGIES)
    assert nz.DERIVED_KINDS == ref.DERIVED


@pytest.mark.parametrize("kind", FUZZED_KINDS)
@FUZZ
@given(data=st.data())
def test_fuzz_normalizer_equals_documented_rule(con, current_year, kind, data):
    values = data.draw(st.lists(STRATEGIES[kind], min_size=1, max_size=40), label="values")
    cc = data.draw(st.sampled_from(COUNTRY_CODES), label="country_code")
    _check(con, kind, values, cc=cc, current_year=current_year)


@pytest.mark.parametrize("kind", ["birth_year", "birth_month", "birth_day"])
@FUZZ
@given(
    dates=st.lists(st.one_of(st.dates(), st.none()), min_size=1, max_size=40),
    stamps=st.lists(st.one_of(st.datetimes(), st.none()), min_size=1, max_size=40),
)
def test_fuzz_birth_parts_from_date_and_timestamp_columns(con, current_year, kind, dates, stamps):
    _check(con, kind, dates, cc="1", current_year=current_year, sql_type="DATE")
    _check(con, kind, stamps, cc="1", current_year=current_year, sql_type="TIMESTAMP")


@pytest.mark.parametrize("kind", ["phone_e164", "phone_digits", "postal", "text"])
@FUZZ
@given(
    numbers=st.lists(st.one_of(st.integers(0, 10**16), st.none()), min_size=1, max_size=40),
    cc=st.sampled_from(COUNTRY_CODES),
)
def test_fuzz_numeric_source_columns(con, current_year, kind, numbers, cc):
    # Phones and ZIP codes often arrive as integer columns.
    _check(con, kind, numbers, cc=cc, current_year=current_year, sql_type="BIGINT")


# ---------------------------------------------------------------------------------------------
# The alias tables the SQL and the reference share, checked against ISO 3166
# ---------------------------------------------------------------------------------------------


def test_fuzz_tables_us_state_codes_are_iso_3166_2_us():
    # Every ANSI code in the table is a US subdivision, and every state, district and inhabited
    # territory is in the table under its ISO name.
    subdivisions = {
        ref.roman_letters(s.name): s.code.lower().removeprefix("us-")
        for s in pycountry.subdivisions.get(country_code="US")
        if s.code != "US-UM"
    }
    table = {ref.roman_letters(name): code for name, code in nz.US_STATES.items()}
    assert set(table.values()) == set(subdivisions.values())
    for name, code in subdivisions.items():
        assert table.get(name, table.get(name.removesuffix("us"))) == code, name


def test_fuzz_tables_country_aliases_and_codes_are_iso_3166_1():
    iso = {c.alpha_2.lower() for c in pycountry.countries}
    assert set(nz.ISO_COUNTRY_CODES) == iso
    assert set(nz.COUNTRIES.values()) <= iso


@pytest.mark.parametrize("when", [date(1999, 12, 31), datetime(1999, 12, 31, 23, 59)])
def test_fuzz_reference_reads_typed_dates(when):
    # Guard for the typed-column branch of the reference itself.
    assert ref.meta_birth_year(when, 2026) == "1999"
    assert ref.meta_birth_day(when, 2026) == "31"
