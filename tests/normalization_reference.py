"""A plain-Python reading of each platform's documented normalization rule.

This is the oracle for ``tests/test_fuzz_normalizers.py``: the DuckDB SQL in
``campaign_sync.projection.normalize`` must give exactly what these functions give, for any
input. Each function quotes the rule it implements. They are written for reading, not speed,
and share no code with the SQL (only the alias tables, which are data; their codes are checked
against ISO 3166 separately).

Sources (quoted below as [meta], [tiktok-ids], [tiktok-howto], [criteo], [klaviyo], [attentive]):
- [meta] Meta Marketing API, Customer File Custom Audiences, "Hashing and normalization for
  multi-key": https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences
- [tiktok-ids] TikTok Ads help, "List of supported IDs and formats for a customer file" (Aug 2025):
  https://ads.tiktok.com/help/article/list-of-supported-ids-and-formats-for-a-customer-file
- [tiktok-howto] TikTok Ads help, "How to create a Custom Audience with a customer file"
  (Sept 2025): https://ads.tiktok.com/help/article/how-to-create-a-custom-audience-with-a-customer-file
- [criteo] Criteo Marketing Solutions API, contact-list audience segments: emails are sent
  plain or SHA-256 hashed, normalized first (UTF-8, whitespace trimmed, lowercase).
- [klaviyo] Klaviyo profile API: ``phone_number`` "Individual's phone number in E.164 format".
- [attentive] Attentive subscribers API: phone "must be E.164 (+19148440001)".

Rules the platforms leave open, and what we chose (the SQL follows the same choices):
- "Trim" removes every Unicode white-space character (``str.isspace``) plus the zero-width space
  and the byte-order mark that exports leave around values.
- "Lowercase" is Unicode's simple (one character to one character) lowercase mapping: it differs
  from Python's ``str.lower`` only for U+0130 (capital I with dot, lowercased to plain ``i``) and
  for the context-dependent final sigma.
- An email is ``local@domain.tld`` with no white space or control character anywhere.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pycountry
from campaign_sync.projection.normalize import COUNTRIES, US_STATES

ZERO_WIDTH = "\u200b\ufeff"
DIGITS = "0123456789"


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def is_blank_char(c: str) -> bool:
    """A character trimming removes."""
    return c.isspace() or c in ZERO_WIDTH


def trimmed(value: object) -> str | None:
    """The value as text without surrounding white space; None when nothing is left."""
    if value is None:
        return None
    s = value if isinstance(value, str) else str(value)
    start, end = 0, len(s)
    while start < end and is_blank_char(s[start]):
        start += 1
    while end > start and is_blank_char(s[end - 1]):
        end -= 1
    return s[start:end] or None


def lowercase(s: str) -> str:
    """Unicode simple lowercase mapping, character by character."""
    return "".join("i" if c == "\u0130" else c.lower() for c in s)


def roman_letters(s: str) -> str:
    """Only a-z: accents stripped (é -> e), a few letters spelled out (ß -> ss), the rest dropped.

    [meta]: "Only First name (FN) and Last Name (LN) support special characters and non-Roman
    alphabets. For the best match results, provide the Roman alphabet translation with no
    special characters."
    """
    decomposed = unicodedata.normalize("NFD", s)
    without_marks = "".join(c for c in decomposed if not unicodedata.category(c).startswith("M"))
    spelled = "".join(ROMAN_SPELLING.get(c, c) for c in lowercase(without_marks))
    return "".join(c for c in spelled if "a" <= c <= "z")


# Latin letters that have no decomposition, written the usual way in a-z.
ROMAN_SPELLING = {
    "ß": "ss", "æ": "ae", "œ": "oe", "þ": "th", "ø": "o", "ł": "l", "đ": "d", "ð": "d",
    "\u0131": "i", "ħ": "h", "ŧ": "t", "ŋ": "n",
}  # fmt: skip


# The alias tables, keyed the way values are compared: a-z only.
_STATE_CODES = {roman_letters(name): code for name, code in US_STATES.items()}
_COUNTRY_CODES = {roman_letters(name): code for name, code in COUNTRIES.items()}


# ---------------------------------------------------------------------------------------------
# Emails
# ---------------------------------------------------------------------------------------------

EMAIL_SHAPE = re.compile(r"[^@]+@[^@]+\.[^@.]+")


def email(value: object) -> str | None:
    """Meta EMAIL, Criteo, Klaviyo and Attentive email.

    [meta] EMAIL: "Trim leading and trailing white space, and convert all characters to
    lowercase." [criteo]: "trim whitespace, lowercase". Not an address: None.
    """
    s = trimmed(value)
    if s is None:
        return None
    e = lowercase(s)
    if any(is_blank_char(c) or unicodedata.category(c) == "Cc" for c in e):
        return None
    return e if EMAIL_SHAPE.fullmatch(e) else None


def email_without_tag(value: object) -> str | None:
    """TikTok EMAIL.

    [tiktok-ids]: "Lowercase only - ID should start with numbers or letters - Remove '+' and any
    characters following the '+' symbol until '@'." (An older TikTok page also removed dots
    before '@'; the current one does not, so dots are kept.)
    """
    e = email(value)
    if e is None:
        return None
    local, domain = e.split("@")
    local = local.split("+")[0]
    if not local or unicodedata.category(local[0])[0] not in "LN":
        return None
    return f"{local}@{domain}"


# ---------------------------------------------------------------------------------------------
# Phones
# ---------------------------------------------------------------------------------------------


def phone_international_digits(value: object, country_code: str) -> str | None:
    """The phone number as country code + national number, digits only.

    [meta] PHONE: "Remove symbols, letters, and any leading zeroes. You should prefix the country
    code if the COUNTRY field is not specified." [tiktok-ids]: "Remove symbols, including '+'
    sign; Remove letters; Remove leading zeros; Add country code if missing, even in the US."

    Written with '+' or the international prefix 00: already international (a "(0)" written
    after the country code is dropped). Otherwise a
    national number gets ``country_code``: for NANP (1), 10 digits, or 11 starting with 1; for
    other countries, the trunk prefix 0 is dropped first. The result has 8 to 15 digits
    (E.164), does not start with 0, and a NANP number has an area code and exchange starting
    with 2-9. Anything else is not a phone number: None.
    """
    raw = trimmed(value)
    if raw is None:
        return None
    d = "".join(c for c in raw if c in DIGITS)
    # In "+44 (0)20 7946 0958" the "(0)" is the national trunk prefix, not part of the number.
    international = "".join(c for c in raw.replace("(0)", "") if c in DIGITS)
    if raw.startswith("+"):
        n: str | None = international
    elif d.startswith("00"):
        n = international[2:]
    elif country_code == "1":
        if len(d) == 10:
            n = "1" + d
        elif len(d) == 11 and d.startswith("1"):
            n = d
        else:
            n = None
    else:
        n = country_code + d[1:] if d.startswith("0") else None
    if n is None or not (8 <= len(n) <= 15) or n[0] == "0":
        return None
    if n[0] == "1" and not (len(n) == 11 and n[1] not in "01" and n[4] not in "01"):
        return None
    return n


def meta_phone(value: object, country_code: str) -> str | None:
    """Meta PHONE: digits with the country code, no '+'.

    [meta]'s own hashed example is ``hash("sha256", "15559876543")``: no '+'.
    """
    return phone_international_digits(value, country_code)


def phone_e164(value: object, country_code: str) -> str | None:
    """TikTok PHONE, Klaviyo phone_number, Attentive phone: E.164, '+' then the digits.

    [tiktok-howto]: recommended format "E164 format: '+'[country code][phone number]" (values
    "without '+'" are "also supported"). [klaviyo], [attentive]: E.164.
    """
    n = phone_international_digits(value, country_code)
    return None if n is None else "+" + n


# ---------------------------------------------------------------------------------------------
# Names and places (Meta)
# ---------------------------------------------------------------------------------------------


def meta_name(value: object) -> str | None:
    """Meta FN and LN.

    [meta]: "Use a-z only. Lowercase only, no punctuation. Special characters in UTF-8 format."
    Letters of any script (and their accents) are kept, in NFC form; everything else (spaces,
    punctuation, symbols, digits) is removed.
    """
    s = trimmed(value)
    if s is None:
        return None
    letters = "".join(c for c in lowercase(s) if unicodedata.category(c)[0] in "LM")
    return unicodedata.normalize("NFC", letters) or None


def meta_first_initial(value: object) -> str | None:
    """Meta FI: [meta] "Use a-z only. Lowercase only. Special characters in UTF-8 format."

    The first character of the normalized first name.
    """
    name = meta_name(value)
    return None if name is None else name[0]


def meta_city(value: object) -> str | None:
    """Meta CT.

    [meta]: "Use a-z only. Lowercase only, with no punctuation, no special characters, and no
    white space."
    """
    s = trimmed(value)
    return None if s is None else roman_letters(s) or None


def meta_state(value: object) -> str | None:
    """Meta ST.

    [meta]: "Use the 2-character ANSI abbreviation code, lowercase. Normalize states outside the
    US in lowercase, with no punctuation, no special characters, and no white space."
    A full US state name becomes its ANSI code (California -> ca); any other value is kept,
    reduced to a-z. Meta's SDKs also drop digits from ST.
    """
    s = trimmed(value)
    if s is None:
        return None
    letters = roman_letters(s)
    return _STATE_CODES.get(letters, letters) or None


def meta_zip(value: object) -> str | None:
    """Meta ZIP.

    [meta]: "Use lowercase, and no white space. For the US, use only the first 5 digits. For
    the UK, use the Area/District/Sector format." Meta's example for the UK is ``m11ae`` (the
    whole postcode M1 1AE). Postal codes are letters and digits, so everything else (spaces,
    dashes, dots) is removed; a US ZIP or ZIP+4 (5 or 9 digits) keeps its first 5 digits.
    """
    s = trimmed(value)
    if s is None:
        return None
    z = "".join(c for c in lowercase(s) if c in DIGITS or "a" <= c <= "z")
    if len(z) in (5, 9) and all(c in DIGITS for c in z):
        return z[:5]
    return z or None


def meta_country(value: object) -> str | None:
    """Meta COUNTRY: [meta] "Use lowercase, 2-letter country codes in ISO 3166-1 alpha-2."

    Common English and native names are mapped to their code; a value that is not an assigned
    ISO 3166-1 alpha-2 code is None.
    """
    s = trimmed(value)
    if s is None:
        return None
    letters = roman_letters(s)
    code = _COUNTRY_CODES.get(letters, letters)
    if len(code) == 2 and pycountry.countries.get(alpha_2=code.upper()) is not None:
        return code
    return None


def meta_gender(value: object) -> str | None:
    """Meta GEN: [meta] "Use these values: m for male, f for female." Anything else: None."""
    s = trimmed(value)
    g = None if s is None else lowercase(s)
    return {"m": "m", "male": "m", "f": "f", "female": "f"}.get(g or "")


DATE_TEXT = re.compile(
    r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})(?:[T ][0-9]{1,2}:[0-9]{2}.*)?"
    r"|([0-9]{4})([0-9]{2})([0-9]{2})"
)


def birth_date(value: object, current_year: int) -> date | None:
    """The date of birth in a DOBY/DOBM/DOBD source value, or None.

    [meta] DOBY: "Use the YYYY format: 1900 to the current year." DOBM: "01 to 12". DOBD: "01
    to 31". A date is read from ISO text (YYYY-MM-DD, with '-' or '/', 1- or 2-digit month and
    day, optionally followed by a time), from YYYYMMDD, or from a DATE/TIMESTAMP column. It must
    be a real calendar date with a year from 1900 to the current year.
    """
    if isinstance(value, datetime):
        found: date | None = value.date()
    elif isinstance(value, date):
        found = value
    else:
        s = trimmed(value)
        m = DATE_TEXT.fullmatch(s) if s is not None else None
        if m is None:
            return None
        y, mo, d = (int(g) for g in m.groups() if g is not None)
        try:
            found = date(y, mo, d)
        except ValueError:
            return None
    if found is None or not 1900 <= found.year <= current_year:
        return None
    return found


def meta_birth_year(value: object, current_year: int) -> str | None:
    """Meta DOBY, YYYY."""
    d = birth_date(value, current_year)
    return None if d is None else f"{d.year:04d}"


def meta_birth_month(value: object, current_year: int) -> str | None:
    """Meta DOBM, MM."""
    d = birth_date(value, current_year)
    return None if d is None else f"{d.month:02d}"


def meta_birth_day(value: object, current_year: int) -> str | None:
    """Meta DOBD, DD."""
    d = birth_date(value, current_year)
    return None if d is None else f"{d.day:02d}"


# ---------------------------------------------------------------------------------------------
# Mobile ad ids, free text, hashing
# ---------------------------------------------------------------------------------------------

AD_ID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def mobile_ad_id(value: object) -> str | None:
    """Meta MADID, TikTok IDFA/AAID.

    [meta] MADID: "Use all lowercase, and keep hyphens." [tiktok-howto] MAID: "Case: all
    uppercase or all lowercase - Remove any spaces at the beginning or end". The all-zero id
    is what a device sends when the user opted out of tracking: None.
    """
    s = trimmed(value)
    if s is None:
        return None
    m = lowercase(s)
    if not AD_ID_SHAPE.fullmatch(m) or set(m) <= {"0", "-"}:
        return None
    return m


def text(value: object) -> str | None:
    """Free text (Klaviyo names and ids, Meta EXTERN_ID): trimmed, otherwise as given."""
    return trimmed(value)


SHA256_SHAPE = re.compile(r"[0-9a-fA-F]{64}")


def hashed(raw: object, normalized: str | None, *, derived: bool = False) -> str | None:
    """SHA-256 (lowercase hex) of the normalized value.

    A raw value that already is a SHA-256 hex digest is sent lowercased, never hashed twice
    (TikTok and Meta accept pre-hashed ids). A ``derived`` value (Meta FI, DOBY, DOBM, DOBD)
    is None then: a digest of the whole source value cannot give a part of it.
    """
    r = trimmed(raw)
    if r is not None and SHA256_SHAPE.fullmatch(r):
        return None if derived else r.lower()
    if normalized is None:
        return None
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


# Meta keys computed from a part of a source value: the first name's initial, the birth date's
# year, month and day.
DERIVED = frozenset({"first_initial", "birth_year", "birth_month", "birth_day"})


# ---------------------------------------------------------------------------------------------
# Which reference each normalizer kind must equal
# ---------------------------------------------------------------------------------------------


def for_kind(kind: str, *, country_code: str, current_year: int) -> Callable[[Any], str | None]:
    """The reference function for normalizer ``kind`` (KeyError for a kind with none)."""
    table: dict[str, Callable[[Any], str | None]] = {
        "text": text,
        "email": email,
        "email_no_tag": email_without_tag,
        "phone_e164": lambda v: phone_e164(v, country_code),
        "phone_digits": lambda v: meta_phone(v, country_code),
        "meta_name": meta_name,
        "meta_city": meta_city,
        "first_initial": meta_first_initial,
        "us_state": meta_state,
        "postal": meta_zip,
        "country": meta_country,
        "gender": meta_gender,
        "birth_year": lambda v: meta_birth_year(v, current_year),
        "birth_month": lambda v: meta_birth_month(v, current_year),
        "birth_day": lambda v: meta_birth_day(v, current_year),
        "mobile_ad_id": mobile_ad_id,
    }
    return table[kind]
