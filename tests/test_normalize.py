"""Normalizer SQL (campaign_sync.projection.normalize) evaluated in DuckDB, and SHA-256 hashing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date

import duckdb
import pytest
from campaign_sync.destinations import REGISTRY
from campaign_sync.projection import normalize as nz


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def _eval(con: duckdb.DuckDBPyConnection, kind: str, value: object, cc: str = "1") -> object:
    expr = nz.normalize(kind, "x", country_code=cc)
    return con.execute(f"SELECT {expr} FROM (SELECT ?::VARCHAR AS x)", [value]).fetchone()[0]


def _hash(con: duckdb.DuckDBPyConnection, kind: str, value: object, cc: str = "1") -> object:
    expr = nz.sha256("x", nz.normalize(kind, "x", country_code=cc))
    return con.execute(f"SELECT {expr} FROM (SELECT ?::VARCHAR AS x)", [value]).fetchone()[0]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# email / email_no_tag
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("test@example.com", "test@example.com"),
        ("  Test@Example.COM ", "test@example.com"),
        ("Jane.Doe+News@Mail.Example.org", "jane.doe+news@mail.example.org"),
        ("a@b.co", "a@b.co"),
        ("not-an-email", None),
        ("missing@tld", None),
        ("two@@example.com", None),
        ("a b@example.com", None),
        ("a\u00a0b@example.com", None),
        ("a\x07b@example.com", None),
        ("trailing@example.com.", None),
        ("@example.com", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_email(con, raw, expected):
    assert _eval(con, "email", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bob+News@Example.com", "bob@example.com"),
        ("  bob+a+b@example.com ", "bob@example.com"),
        ("bob@example.com", "bob@example.com"),
        ("Bob.Smith@Example.COM", "bob.smith@example.com"),
        ("bad+tag", None),
        ("", None),
        (None, None),
        # Dropping the tag must not leave an address without a local part.
        ("+promo@example.com", None),
        # TikTok: "ID should start with numbers or letters".
        (".bob@example.com", None),
        ("_bob+x@example.com", None),
        ("7bob@example.com", "7bob@example.com"),
    ],
)
def test_email_no_tag(con, raw, expected):
    assert _eval(con, "email_no_tag", raw) == expected


# --------------------------------------------------------------------------------------------
# phones
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(415) 555-0134", "+14155550134"),
        ("415.555.0134", "+14155550134"),
        ("415-555-0134", "+14155550134"),
        ("4155550134", "+14155550134"),
        ("1-415-555-0134", "+14155550134"),
        ("+1 415 555 0134", "+14155550134"),
        ("+1 (415) 555-0134", "+14155550134"),
        ("  +14155550134  ", "+14155550134"),
        ("001 415 555 0134", "+14155550134"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+44 (0)20 7946 0958", "+442079460958"),  # "(0)" is the trunk prefix
        ("0044 (0)20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
        # junk
        ("555-01", None),
        ("n/a", None),
        ("N/A", None),
        ("0000000", None),
        ("+1 (000)", None),
        ("000-000-0000", None),
        ("1111111111", None),
        ("12", None),
        ("x", None),
        ("-", None),
        ("", None),
        (None, None),
        # NANP area code and exchange must start with 2-9
        ("(015) 555-0134", None),
        ("(115) 555-0134", None),
        ("+1 015 555 0134", None),
        ("415 055 0134", None),
        ("415 155 0134", None),
        # too long for a US national number, even with an extension
        ("415-555-0134 x12", None),
        # national number with a leading 0 is not a US number
        ("0415 555 0134", None),
    ],
)
def test_phone_e164_us(con, raw, expected):
    assert _eval(con, "phone_e164", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("020 7946 0958", "+442079460958"),
        ("020-7946-0958", "+442079460958"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+1 415 555 0134", "+14155550134"),
        ("0", None),
        ("n/a", None),
        ("", None),
        (None, None),
    ],
)
def test_phone_e164_national_with_country_code(con, raw, expected):
    assert _eval(con, "phone_e164", raw, cc="44") == expected


@pytest.mark.parametrize(
    ("raw", "cc", "expected"),
    [
        ("(415) 555-0134", "1", "14155550134"),
        ("+1 415 555 0134", "1", "14155550134"),
        ("1-415-555-0134", "1", "14155550134"),
        ("+44 20 7946 0958", "1", "442079460958"),
        ("0044 20 7946 0958", "1", "442079460958"),
        ("020 7946 0958", "44", "442079460958"),
        ("555-01", "1", None),
        ("+1 (000)", "1", None),
        ("(115) 555-0134", "1", None),
        ("n/a", "1", None),
        (None, "1", None),
    ],
)
def test_phone_digits(con, raw, cc, expected):
    assert _eval(con, "phone_digits", raw, cc=cc) == expected


# --------------------------------------------------------------------------------------------
# names, places, demographics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Alice", "alice"),
        ("  Mary Ann ", "maryann"),
        ("O'Brien", "obrien"),
        ("O\u2019Brien", "obrien"),  # typographic apostrophe is punctuation too
        ("Smith-Jones", "smithjones"),
        ("St. John", "stjohn"),
        ("Smith 3rd", "smithrd"),  # "a-z only": no digits
        ("Zoë", "zoë"),
        ("Zoe\u0308", "zoë"),  # decomposed accent: same NFC text, same hash
        ("MÜLLER", "müller"),
        ("Mary\u00a0Ann", "maryann"),
        ("Иван", "иван"),
        ("...", None),
        ("", None),
        (None, None),
    ],
)
def test_meta_name(con, raw, expected):
    # Meta FN/LN: "Use a-z only. Lowercase only, no punctuation. Special characters in UTF-8
    # format." Only FN and LN keep accents and non-Roman letters.
    assert _eval(con, "meta_name", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("San Francisco", "sanfrancisco"),
        (" St. Louis ", "stlouis"),
        ("Zürich", "zurich"),
        ("São Paulo", "saopaulo"),
        ("Ciudad de México", "ciudaddemexico"),
        ("Großbeeren", "grossbeeren"),
        ("Tromsø", "tromso"),
        ("Łódź", "lodz"),
        ("Winston-Salem 2", "winstonsalem"),
        ("東京", None),
        ("...", None),
        ("", None),
        (None, None),
    ],
)
def test_meta_city(con, raw, expected):
    # Meta CT: "Use a-z only. Lowercase only, with no punctuation, no special characters, and no
    # white space": accents are stripped (the "Roman alphabet translation"), not kept.
    assert _eval(con, "meta_city", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Alice", "a"),
        (" mary ann", "m"),
        ("'Zoë", "z"),
        ("Élodie", "é"),
        ("", None),
        ("--", None),
        (None, None),
    ],
)
def test_first_initial(con, raw, expected):
    assert _eval(con, "first_initial", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CA", "ca"),
        (" ny ", "ny"),
        ("California", "ca"),
        ("  new YORK ", "ny"),
        ("District of Columbia", "dc"),
        ("West Virginia", "wv"),
        ("Puerto Rico", "pr"),
        ("new-york", "ny"),
        ("N.Y.", "ny"),
        ("North  Carolina", "nc"),
        # Outside the US (or not a US state name): lowercase, no punctuation, no special
        # characters, no white space; not dropped.
        ("Calif", "calif"),
        ("C", "c"),
        ("ON", "on"),
        ("Île-de-France", "iledefrance"),
        ("Québec", "quebec"),
        ("N.S.W.", "nsw"),
        ("Baden-Württemberg", "badenwurttemberg"),
        ("Nordrhein-Westfalen", "nordrheinwestfalen"),
        ("Dublin 4", "dublin"),
        ("東京都", None),
        ("!!", None),
        ("", None),
        (None, None),
    ],
)
def test_us_state(con, raw, expected):
    # Meta ST: "Use the 2-character ANSI abbreviation code, lowercase. Normalize states outside
    # the US in lowercase, with no punctuation, no special characters, and no white space."
    assert _eval(con, "us_state", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("94105", "94105"),
        (" 94105 ", "94105"),
        ("94105-1234", "94105"),
        ("941051234", "94105"),
        ("SW1A 1AA", "sw1a1aa"),
        ("  ec1a 1bb ", "ec1a1bb"),
        ("M1 1AE", "m11ae"),  # Meta's own UK example
        ("10115", "10115"),
        ("94105.", "94105"),
        ("01310-100", "01310100"),  # Brazil: no dash, and not a US ZIP+4
        ("K1A 0B1", "k1a0b1"),
        ("--", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_postal(con, raw, expected):
    assert _eval(con, "postal", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("US", "us"),
        ("us", "us"),
        ("United States", "us"),
        ("USA", "us"),
        ("U.S.A.", "us"),
        ("United Kingdom", "gb"),
        ("uk", "gb"),
        (" Germany ", "de"),
        ("Deutschland", "de"),
        ("GB", "gb"),
        ("U.K.", "gb"),
        ("México", "mx"),
        ("España", "es"),
        ("ie", "ie"),
        ("ZZ", None),  # two letters, but not an ISO 3166-1 code
        ("XK", None),
        ("Narnia", None),
        ("U", None),
        ("", None),
        (None, None),
    ],
)
def test_country(con, raw, expected):
    assert _eval(con, "country", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("M", "m"),
        ("male", "m"),
        (" Male ", "m"),
        ("f", "f"),
        ("FEMALE", "f"),
        ("x", None),
        ("nonbinary", None),
        ("", None),
        (None, None),
    ],
)
def test_gender(con, raw, expected):
    assert _eval(con, "gender", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1985-03-07", ("1985", "03", "07")),
        (" 2001-12-31 ", ("2001", "12", "31")),
        ("1999-1-2", ("1999", "01", "02")),
        ("1985/03/07", ("1985", "03", "07")),
        ("19850307", ("1985", "03", "07")),
        ("1985-03-07 10:11:12", ("1985", "03", "07")),
        ("1985-03-07T10:11", ("1985", "03", "07")),
        ("not a date", (None, None, None)),
        ("1985-13-01", (None, None, None)),
        ("1985-02-30", (None, None, None)),
        # Meta DOBY: "1900 to the current year"; DuckDB's own date words are not dates here.
        ("1899-12-31", (None, None, None)),
        ("2999-01-01", (None, None, None)),
        ("epoch", (None, None, None)),
        ("infinity", (None, None, None)),
        ("85-03-07", (None, None, None)),
        ("1985-03-07 (BC)", (None, None, None)),
        ("03/07/1985", (None, None, None)),  # month/day order unknown
        ("", (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_birth_parts_from_strings(con, raw, expected):
    got = tuple(_eval(con, k, raw) for k in ("birth_year", "birth_month", "birth_day"))
    assert got == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (date(1985, 3, 7), ("1985", "03", "07")),
        (date(2000, 11, 30), ("2000", "11", "30")),
        (date(1850, 1, 1), (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_birth_parts_from_date(con, value, expected):
    exprs = ", ".join(nz.normalize(k, "x") for k in ("birth_year", "birth_month", "birth_day"))
    got = con.execute(f"SELECT {exprs} FROM (SELECT ?::DATE AS x)", [value]).fetchone()
    assert got == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("6D92078A-8246-4BA4-AE5B-76104861E7DC", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
        (" 6d92078a-8246-4ba4-ae5b-76104861e7dc ", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
        ("00000000-0000-0000-0000-000000000000", None),
        ("6d92078a82464ba4ae5b76104861e7dc", None),
        ("6d92078a-8246-4ba4-ae5b-76104861e7d", None),
        ("zd92078a-8246-4ba4-ae5b-76104861e7dc", None),
        ("not-an-idfa", None),
        ("", None),
        (None, None),
    ],
)
def test_mobile_ad_id(con, raw, expected):
    assert _eval(con, "mobile_ad_id", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("  hello world  ", "hello world"), ("x", "x"), ("", None), ("   ", None), (None, None)],
)
def test_text(con, raw, expected):
    assert _eval(con, "text", raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("text", "\thello\r\n", "hello"),
        ("text", "\t \n", None),
        ("email", "\tJane.Doe@Example.org\r\n", "jane.doe@example.org"),
        ("email", "jane@example.org\r", "jane@example.org"),
        ("phone_e164", "\t(415) 555-0134\r", "+14155550134"),
        ("email", "\u00a0jane@example.org\u3000", "jane@example.org"),
        ("email", "\ufeffjane@example.org\u200b", "jane@example.org"),
        ("phone_e164", "\u2003+44 20 7946 0958", "+442079460958"),
        ("text", "\x1fhello\x85", "hello"),
    ],
)
def test_trimming_covers_tabs_and_line_breaks(con, kind, raw, expected):
    # CRLF exports and tab-separated files leave \r and \t around values; "trimmed" must
    # remove them like spaces, or a good address is rejected as invalid.
    assert _eval(con, kind, raw) == expected


@pytest.mark.parametrize("raw", ["  Keep As Is ", "", "   ", None, "42"])
def test_passthrough_returns_raw_value(con, raw):
    assert nz.normalize("passthrough", "x") == "x"
    assert _eval(con, "passthrough", raw) == raw


def test_passthrough_keeps_source_type(con):
    expr = nz.normalize("passthrough", "x")
    assert con.execute(f"SELECT {expr} FROM (SELECT 12.5::DOUBLE AS x)").fetchone()[0] == 12.5


# --------------------------------------------------------------------------------------------
# SHA-256
# --------------------------------------------------------------------------------------------

TEST_EMAIL_SHA = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"


def test_known_sha_vector_is_right():
    # Guard the literal above with an independent computation.
    assert hashlib.sha256(b"test@example.com").hexdigest() == TEST_EMAIL_SHA


@pytest.mark.parametrize(
    ("kind", "raw", "cc", "normalized"),
    [
        ("email", "test@example.com", "1", "test@example.com"),
        ("email", "  Test@Example.COM ", "1", "test@example.com"),
        ("email_no_tag", "Test+Promo@Example.com", "1", "test@example.com"),
        ("phone_e164", "(415) 555-0134", "1", "+14155550134"),
        ("phone_e164", "+1 415 555 0134", "1", "+14155550134"),
        ("phone_e164", "020 7946 0958", "44", "+442079460958"),
        ("phone_digits", "(415) 555-0134", "1", "14155550134"),
        ("phone_digits", "1-415-555-0134", "1", "14155550134"),
        ("meta_name", " O'Brien ", "1", "obrien"),
        ("first_initial", "Alice", "1", "a"),
        ("us_state", "California", "1", "ca"),
        ("postal", "94105-1234", "1", "94105"),
        ("country", "United States", "1", "us"),
        ("gender", "Female", "1", "f"),
        ("birth_year", "1985-03-07", "1", "1985"),
        ("mobile_ad_id", "6D92078A-8246-4BA4-AE5B-76104861E7DC", "1", None),
    ],
)
def test_sha256_hashes_normalized_value(con, kind, raw, cc, normalized):
    if normalized is None:
        normalized = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert _hash(con, kind, raw, cc) == _sha(normalized)


def test_sha256_known_vectors(con):
    assert _hash(con, "email", "  Test@Example.COM ") == TEST_EMAIL_SHA
    assert _hash(con, "email", "test@example.com") == TEST_EMAIL_SHA
    assert _hash(con, "phone_e164", "(415) 555-0134") == hashlib.sha256(b"+14155550134").hexdigest()
    assert (
        _hash(con, "phone_digits", "(415) 555-0134") == hashlib.sha256(b"14155550134").hexdigest()
    )
    # Normalization before hashing: the raw text's own digest is never what is sent.
    assert _hash(con, "email", "  Test@Example.COM ") != _sha("  Test@Example.COM ")


@pytest.mark.parametrize("kind", ["email", "email_no_tag", "phone_e164", "phone_digits", "text"])
@pytest.mark.parametrize(
    "raw",
    [TEST_EMAIL_SHA, TEST_EMAIL_SHA.upper(), f"  {TEST_EMAIL_SHA.upper()} "],
)
def test_sha256_passes_already_hashed_values_through(con, kind, raw):
    got = _hash(con, kind, raw)
    assert got == TEST_EMAIL_SHA
    assert got != _sha(TEST_EMAIL_SHA)  # never hashed twice


@pytest.mark.parametrize("kind", sorted(nz.DERIVED_KINDS))
def test_sha256_derived_kinds_never_pass_a_digest_through(con, kind):
    # The initial of a hashed first name, or the year of a hashed birth date, cannot be known:
    # the source's digest is not the attribute's digest.
    expr = nz.sha256("x", nz.normalize(kind, "x"), kind=kind)
    got = con.execute(f"SELECT {expr} FROM (SELECT ?::VARCHAR AS x)", [TEST_EMAIL_SHA]).fetchone()
    assert got[0] is None


@pytest.mark.parametrize("raw", ["a" * 63, "g" * 64, "a" * 65])
def test_sha256_near_hash_values_are_not_passed_through(con, raw):
    # Not 64 hex characters: normalized as text and hashed.
    assert _hash(con, "text", raw) == _sha(raw)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("email", None),
        ("email", ""),
        ("email", "not-an-email"),
        ("phone_e164", "n/a"),
        ("phone_digits", None),
        ("mobile_ad_id", "00000000-0000-0000-0000-000000000000"),
        ("gender", "x"),
    ],
)
def test_sha256_null_stays_null(con, kind, raw):
    assert _hash(con, kind, raw) is None


# --------------------------------------------------------------------------------------------
# KINDS
# --------------------------------------------------------------------------------------------


def test_kinds_lists_the_expected_kinds():
    assert {
        "passthrough",
        "text",
        "email",
        "email_no_tag",
        "phone_e164",
        "phone_digits",
        "meta_name",
        "meta_city",
        "first_initial",
        "us_state",
        "postal",
        "country",
        "gender",
        "birth_year",
        "birth_month",
        "birth_day",
        "mobile_ad_id",
    } == set(nz.KINDS)


@pytest.mark.parametrize("kind", sorted(nz.KINDS))
def test_every_kind_in_kinds_is_accepted_and_valid_sql(con, kind):
    assert _eval(con, kind, None) is None
    expr = nz.normalize(kind, "x", country_code="44")
    con.execute(f"SELECT {expr} FROM (SELECT 'abc'::VARCHAR AS x)").fetchone()


def _public_names() -> list[str]:
    return sorted(n for n in dir(nz) if not n.startswith("_"))


@pytest.mark.parametrize("name", _public_names())
def test_dispatcher_accepts_only_kinds(name):
    try:
        nz.normalize(name, "x")
    except (KeyError, TypeError, ValueError):
        assert name not in nz.KINDS
    else:
        assert name in nz.KINDS, f"normalize() accepts {name!r} but KINDS lacks it"


def test_unknown_kind_is_refused():
    with pytest.raises(KeyError):
        nz.normalize("no_such_kind", "x")


def test_every_destination_rule_kind_is_in_kinds():
    for dtype in REGISTRY.values():
        for name, rule in [*dtype.attributes.items(), ("<extra>", dtype.extra_rule)]:
            assert rule.kind in nz.KINDS, f"{dtype.name}.{name}: {rule.kind}"
