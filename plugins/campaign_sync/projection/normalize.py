"""Normalizers as DuckDB SQL expressions, one per attribute kind.

Each normalizer turns a raw column expression into its normalized text, or NULL when the value
cannot be normalized. Hashing is SHA-256 (lowercase hex) of the normalized text; a value that
already looks like a SHA-256 digest is passed through lowercased, never hashed twice.
"""

from __future__ import annotations

from collections.abc import Callable

EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s.]+"
WHITESPACE = " \t\r\n\v\f\u00a0"
SHA256_PATTERN = "[0-9A-Fa-f]{64}"
MOBILE_AD_ID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ZERO_AD_ID = "00000000-0000-0000-0000-000000000000"
# NANP: area code and exchange start with 2-9.
NANP_PATTERN = "1[2-9][0-9]{2}[2-9][0-9]{6}"
E164_DIGITS_PATTERN = "[1-9][0-9]{7,14}"

US_STATES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "district of columbia": "dc",
    "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il",
    "indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
    "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi", "minnesota": "mn",
    "mississippi": "ms", "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv",
    "new hampshire": "nh", "new jersey": "nj", "new mexico": "nm", "new york": "ny",
    "north carolina": "nc", "north dakota": "nd", "ohio": "oh", "oklahoma": "ok", "oregon": "or",
    "pennsylvania": "pa", "rhode island": "ri", "south carolina": "sc", "south dakota": "sd",
    "tennessee": "tn", "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va",
    "washington": "wa", "west virginia": "wv", "wisconsin": "wi", "wyoming": "wy",
    "puerto rico": "pr",
}  # fmt: skip
COUNTRIES = {
    "united states": "us", "united states of america": "us", "usa": "us", "u.s.": "us",
    "u.s.a.": "us", "united kingdom": "gb", "uk": "gb", "great britain": "gb", "england": "gb",
    "germany": "de", "deutschland": "de", "france": "fr", "canada": "ca", "mexico": "mx",
    "spain": "es", "italy": "it", "australia": "au", "netherlands": "nl", "ireland": "ie",
}  # fmt: skip


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _map(expr: str, mapping: dict[str, str]) -> str:
    pairs = ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in mapping.items())
    return f"coalesce(MAP {{{pairs}}}[{expr}], {expr})"


def text(x: str) -> str:
    """Text trimmed of spaces, tabs and line breaks; NULL when empty."""
    return f"NULLIF(trim(CAST({x} AS VARCHAR), {_lit(WHITESPACE)}), '')"


def present(x: str) -> str:
    """Whether the raw value is there at all (not NULL, not blank)."""
    return f"({text(x)} IS NOT NULL)"


def email(x: str) -> str:
    """Trimmed, lowercased address; NULL unless it looks like local@domain.tld."""
    e = f"lower({text(x)})"
    return f"CASE WHEN regexp_full_match({e}, {_lit(EMAIL_PATTERN)}) THEN {e} END"


def email_no_tag(x: str) -> str:
    """As ``email``, without a '+tag' in the local part; NULL if nothing is left before '@'."""
    e = f"regexp_replace({email(x)}, '\\+[^@]*@', '@')"
    return f"CASE WHEN regexp_full_match({e}, {_lit(EMAIL_PATTERN)}) THEN {e} END"


def _phone_digits(x: str, country_code: str) -> str:
    raw = text(x)
    d = f"regexp_replace({raw}, '[^0-9]', '', 'g')"
    cc = _lit(country_code)
    national = (
        f"WHEN length({d}) = 10 THEN {cc} || {d} WHEN length({d}) = 11 AND {d} LIKE '1%' THEN {d} "
        if country_code == "1"
        else f"WHEN {d} LIKE '0%' AND {d} NOT LIKE '00%' THEN {cc} || substr({d}, 2) "
    )
    n = (
        f"(CASE WHEN {raw} LIKE '+%' THEN {d} "
        f"WHEN {d} LIKE '00%' THEN substr({d}, 3) {national}END)"
    )
    return (
        f"CASE WHEN regexp_full_match({n}, {_lit(E164_DIGITS_PATTERN)})"
        f" AND ({n} NOT LIKE '1%' OR regexp_full_match({n}, {_lit(NANP_PATTERN)}))"
        f" THEN {n} END"
    )


def phone_e164(x: str, country_code: str) -> str:
    """E.164 ('+' and 8-15 digits); national numbers get ``country_code``; NULL if impossible."""
    return f"('+' || {_phone_digits(x, country_code)})"


def phone_digits(x: str, country_code: str) -> str:
    """E.164 digits without '+', as Meta asks."""
    return _phone_digits(x, country_code)


def meta_name(x: str) -> str:
    """Lowercase letters only: no punctuation or spaces (Meta FN/LN/CT)."""
    return f"NULLIF(regexp_replace(lower({text(x)}), '[[:punct:][:space:]]', '', 'g'), '')"


def first_initial(x: str) -> str:
    """First letter of the normalized first name (Meta FI)."""
    return f"left({meta_name(x)}, 1)"


def us_state(x: str) -> str:
    """Two-letter lowercase state code; full US state names are mapped."""
    s = _map(f"lower({text(x)})", US_STATES)
    return f"CASE WHEN regexp_full_match({s}, '[a-z]{{2}}') THEN {s} END"


def postal(x: str) -> str:
    """Lowercase without spaces; US ZIP+4 cut to five digits."""
    z = f"regexp_replace(lower({text(x)}), '\\s', '', 'g')"
    return (
        f"CASE WHEN regexp_full_match({z}, '[0-9]{{5}}(-?[0-9]{{4}})?') THEN left({z}, 5) "
        f"ELSE NULLIF({z}, '') END"
    )


def country(x: str) -> str:
    """ISO 3166-1 alpha-2, lowercase; common country names are mapped."""
    c = _map(f"lower({text(x)})", COUNTRIES)
    return f"CASE WHEN regexp_full_match({c}, '[a-z]{{2}}') THEN {c} END"


def gender(x: str) -> str:
    """'m' or 'f'; anything else is NULL."""
    g = f"lower({text(x)})"
    return f"CASE WHEN {g} IN ('m', 'male') THEN 'm' WHEN {g} IN ('f', 'female') THEN 'f' END"


def _date_part(x: str, fmt: str) -> str:
    return f"strftime(TRY_CAST({text(x)} AS DATE), {_lit(fmt)})"


def birth_year(x: str) -> str:
    """Four-digit year of a date."""
    return _date_part(x, "%Y")


def birth_month(x: str) -> str:
    """Two-digit month of a date."""
    return _date_part(x, "%m")


def birth_day(x: str) -> str:
    """Two-digit day of a date."""
    return _date_part(x, "%d")


def mobile_ad_id(x: str) -> str:
    """Lowercase IDFA/AAID with hyphens; NULL when malformed or the all-zero opt-out id."""
    m = f"lower({text(x)})"
    return (
        f"CASE WHEN regexp_full_match({m}, {_lit(MOBILE_AD_ID_PATTERN)})"
        f" AND {m} <> {_lit(ZERO_AD_ID)} THEN {m} END"
    )


def sha256(raw: str, normalized: str) -> str:
    """SHA-256 hex of ``normalized``; an already-hashed raw value passes through lowercased."""
    r = text(raw)
    return (
        f"CASE WHEN regexp_full_match({r}, {_lit(SHA256_PATTERN)}) THEN lower({r})"
        f" ELSE sha256({normalized}) END"
    )


_SIMPLE: dict[str, Callable[[str], str]] = {
    "text": text,
    "email": email,
    "email_no_tag": email_no_tag,
    "meta_name": meta_name,
    "meta_city": meta_name,
    "first_initial": first_initial,
    "us_state": us_state,
    "postal": postal,
    "country": country,
    "gender": gender,
    "birth_year": birth_year,
    "birth_month": birth_month,
    "birth_day": birth_day,
    "mobile_ad_id": mobile_ad_id,
}
_PHONE: dict[str, Callable[[str, str], str]] = {
    "phone_e164": phone_e164,
    "phone_digits": phone_digits,
}
KINDS = frozenset({"passthrough", *_SIMPLE, *_PHONE})


def normalize(kind: str, x: str, *, country_code: str = "1") -> str:
    """SQL for ``kind``'s normalized value of raw expression ``x``."""
    if kind == "passthrough":
        return x
    if kind in _PHONE:
        return _PHONE[kind](x, country_code)
    return _SIMPLE[kind](x)
