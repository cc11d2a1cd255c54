"""Normalizers as DuckDB SQL expressions, one per attribute kind.

Each normalizer turns a raw column expression into its normalized text, or NULL when the value
cannot be normalized. Hashing is SHA-256 (lowercase hex) of the normalized text; a value that
already looks like a SHA-256 digest is passed through lowercased, never hashed twice.

The rules are the platforms' documented ones, quoted on each function. The sources:
- Meta: Marketing API, Customer File Custom Audiences, "Hashing and normalization for multi-key"
  (developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences).
- TikTok: Ads help, "List of supported IDs and formats for a customer file" (Aug 2025) and "How
  to create a Custom Audience with a customer file" (Sept 2025).
- Klaviyo and Attentive: phone numbers in E.164. Criteo: emails trimmed and lowercased.
``tests/normalization_reference.py`` restates every rule in plain Python, and
``tests/test_fuzz_normalizers.py`` checks this SQL against it on generated values.
"""

from __future__ import annotations

from collections.abc import Callable

# Trimming removes every Unicode white-space character, plus the zero-width space and the
# byte-order mark that exports leave around values.
WHITESPACE = (
    "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u200b\ufeff"
)
_SPACE_CHARS = "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE)
_TRIM_PATTERN = f"^[{_SPACE_CHARS}]+|[{_SPACE_CHARS}]+$"
# One character of an email address: no '@', no white space, no control character.
_EMAIL_CHAR = f"[^@{_SPACE_CHARS}\\p{{Cc}}]"
EMAIL_PATTERN = f"{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\\.{_EMAIL_CHAR.replace('@', '@.')}+"
SHA256_PATTERN = "[0-9A-Fa-f]{64}"
MOBILE_AD_ID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ZERO_AD_ID = "00000000-0000-0000-0000-000000000000"
# E.164 digits (8 to 15, no leading 0); in NANP (country code 1) the area code and exchange
# start with 2-9.
PHONE_DIGITS_PATTERN = "[2-9][0-9]{7,14}|1[2-9][0-9]{2}[2-9][0-9]{6}"
# A date as text: YYYY-MM-DD ('-' or '/', 1- or 2-digit month and day), optionally followed by
# a time (a TIMESTAMP column cast to text), or YYYYMMDD.
ISO_DATE_PATTERN = "([0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2})([T ][0-9]{1,2}:[0-9]{2}.*)?"
BASIC_DATE_PATTERN = "^([0-9]{4})([0-9]{2})([0-9]{2})$"
FIRST_BIRTH_YEAR = 1900
# Kinds computed from a part of the source value.
DERIVED_KINDS = frozenset({"first_initial", "birth_year", "birth_month", "birth_day"})

# Full names of the US states, DC and the inhabited territories -> ANSI (USPS) codes.
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
    "american samoa": "as", "guam": "gu", "northern mariana islands": "mp", "puerto rico": "pr",
    "us virgin islands": "vi", "virgin islands": "vi",
}  # fmt: skip
# Common country names -> ISO 3166-1 alpha-2 (compared a-z only: "U.S.A." is "usa").
COUNTRIES = {
    "united states": "us", "united states of america": "us", "usa": "us", "america": "us",
    "united kingdom": "gb", "uk": "gb", "great britain": "gb", "england": "gb",
    "scotland": "gb", "wales": "gb", "northern ireland": "gb", "germany": "de",
    "deutschland": "de", "france": "fr", "canada": "ca", "mexico": "mx", "spain": "es",
    "espana": "es", "italy": "it", "italia": "it", "australia": "au", "netherlands": "nl",
    "the netherlands": "nl", "nederland": "nl", "ireland": "ie", "japan": "jp", "brazil": "br",
    "brasil": "br", "india": "in", "china": "cn", "switzerland": "ch", "schweiz": "ch",
    "suisse": "ch", "austria": "at", "osterreich": "at", "belgium": "be", "sweden": "se",
    "norway": "no", "denmark": "dk", "finland": "fi", "poland": "pl", "portugal": "pt",
    "new zealand": "nz", "south africa": "za", "south korea": "kr", "korea": "kr",
}  # fmt: skip
# Every assigned ISO 3166-1 alpha-2 code.
ISO_COUNTRY_CODES = frozenset(
    """ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq
    br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do
    dz ec ee eg eh er es et fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu
    gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw
    ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu
    mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw
    py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz tc td tf
    tg th tj tk tl tm tn to tr tt tv tw tz ua ug um us uy uz va vc ve vg vi vn vu wf ws ye yt za
    zm zw""".split()
)
# Latin letters without a decomposition, spelled in a-z ("Roman alphabet translation").
ROMAN_SPELLING = {
    "ß": "ss", "æ": "ae", "œ": "oe", "þ": "th", "ø": "o", "ł": "l", "đ": "d", "ð": "d",
    "\u0131": "i", "ħ": "h", "ŧ": "t", "ŋ": "n",
}  # fmt: skip


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _map(expr: str, mapping: dict[str, str]) -> str:
    """``mapping[expr]``, NULL when absent (keys compared without spaces)."""
    pairs = ", ".join(f"{_lit(k.replace(' ', ''))}: {_lit(v)}" for k, v in mapping.items())
    return f"MAP {{{pairs}}}[{expr}]"


def _matching(expr: str, pattern: str) -> str:
    """``expr`` when it fully matches ``pattern``, else NULL.

    Written so that ``expr`` appears once: each copy of a regular expression in a query is
    compiled again, which made a query's fixed cost grow with every repetition.
    """
    return f"NULLIF(regexp_extract({expr}, {_lit(f'^({pattern})$')}, 1), '')"


def _roman_letters(s: str) -> str:
    """Only a-z: accents stripped (é -> e), a few letters spelled out (ß -> ss), the rest removed.

    Meta: "Only First name (FN) and Last Name (LN) support special characters and non-Roman
    alphabets. For the best match results, provide the Roman alphabet translation with no
    special characters."
    """
    # strip_accents stops at a NUL character.
    r = f"lower(strip_accents(replace({s}, chr(0), '')))"
    one = {k: v for k, v in ROMAN_SPELLING.items() if len(v) == 1}
    r = f"translate({r}, {_lit(''.join(one))}, {_lit(''.join(one.values()))})"
    for letter, spelled in ROMAN_SPELLING.items():
        if len(spelled) > 1:
            r = f"replace({r}, {_lit(letter)}, {_lit(spelled)})"
    # ASCII text (as many bytes as characters) has no accent or letter to spell out: the same
    # result without the Unicode steps, which cost most of the time on typical values.
    return (
        f"CASE WHEN strlen({s}) = length({s}) THEN regexp_replace(lower({s}), '[^a-z]', '', 'g')"
        f" ELSE regexp_replace({r}, '[^a-z]', '', 'g') END"
    )


class Trimmed(str):
    """A column expression that already holds ``text()`` of a raw value.

    Normalizers given one use it as it is instead of trimming again, so a query can trim each
    source column once and share it between every normalizer of that column.
    """


def text(x: str) -> str:
    """Text trimmed of white space (any Unicode space, tab, line break); NULL when empty."""
    if isinstance(x, Trimmed):
        return x
    # A regular expression: DuckDB's trim() with a set of characters costs several times more.
    return f"NULLIF(regexp_replace(CAST({x} AS VARCHAR), {_lit(_TRIM_PATTERN)}, '', 'g'), '')"


def present(x: str) -> str:
    """Whether the raw value is there at all (not NULL, not blank)."""
    return f"({text(x)} IS NOT NULL)"


def email(x: str) -> str:
    """Trimmed, lowercased address; NULL unless it looks like local@domain.tld.

    Meta EMAIL: "Trim leading and trailing white space, and convert all characters to
    lowercase." Criteo, Klaviyo and Attentive take the same form.
    """
    e = f"lower({text(x)})"
    return _matching(e, EMAIL_PATTERN)


def email_no_tag(x: str) -> str:
    """As ``email``, without a '+tag' in the local part (TikTok EMAIL).

    TikTok: "Lowercase only - ID should start with numbers or letters - Remove '+' and any
    characters following the '+' symbol until '@'." NULL when the local part left does not start
    with a letter or digit. Dots are kept: only an older TikTok page asked to remove them.
    """
    e = f"regexp_replace({email(x)}, '\\+[^@]*@', '@')"
    return _matching(e, "[\\p{L}\\p{N}][^@]*@.+")


def _phone_digits(x: str, country_code: str) -> str:
    raw = text(x)
    d = f"regexp_replace({raw}, '[^0-9]', '', 'g')"
    # "+44 (0)20 ...": the bracketed trunk prefix is not part of an international number.
    di = f"regexp_replace(replace({raw}, '(0)', ''), '[^0-9]', '', 'g')"
    cc = _lit(country_code)
    national = (
        f"WHEN length({d}) = 10 THEN {cc} || {d} WHEN length({d}) = 11 AND {d} LIKE '1%' THEN {d} "
        if country_code == "1"
        else f"WHEN {d} LIKE '0%' THEN {cc} || substr({d}, 2) "
    )
    n = (
        f"(CASE WHEN {raw} LIKE '+%' THEN {di} "
        f"WHEN {d} LIKE '00%' THEN substr({di}, 3) {national}END)"
    )
    return _matching(n, PHONE_DIGITS_PATTERN)


# Phone formats chosen:
# - TikTok PHONE: E.164 with '+' ("+14155550134") before SHA-256. TikTok's pages disagree: "How
#   to create a Custom Audience with a customer file" (Sept 2025) recommends "E164 format:
#   "+"[country code][phone number]" and lists "Without "+"" as "Also Supported"; "List of
#   supported IDs and formats for a customer file" (Aug 2025) says "Remove symbols, including
#   "+" sign". We follow the newer page's recommendation; TikTok accepts both.
# - Meta PHONE: digits with the country code, no '+' ("14155550134"). Meta's table: "Remove
#   symbols, letters, and any leading zeroes. You should prefix the country code if the COUNTRY
#   field is not specified."; its hashing example is hash("sha256", "15559876543").
def phone_e164(x: str, country_code: str) -> str:
    """E.164: '+', country code, number (TikTok PHONE, Klaviyo, Attentive); NULL if impossible.

    TikTok's customer-file guide (Sept 2025) recommends: "E164 format: '+'[country code][phone
    number]" (without '+' is "also supported"). Klaviyo and Attentive require E.164.
    Written with '+' or 00: international already. Otherwise a national number gets
    ``country_code`` (NANP: 10 digits, or 11 starting with 1; elsewhere the trunk 0 is
    dropped). 8 to 15 digits; a NANP area code and exchange start with 2-9.
    """
    return e164_from_digits(_phone_digits(x, country_code))


def e164_from_digits(digits: str) -> str:
    """``phone_e164`` from the ``phone_digits`` value of the same number."""
    return f"('+' || {digits})"


def phone_digits(x: str, country_code: str) -> str:
    """The same number as ``phone_e164``, digits only without '+' (Meta PHONE).

    Meta: "Remove symbols, letters, and any leading zeroes. You should prefix the country code
    if the COUNTRY field is not specified." Meta's hashed example is of "15559876543".
    """
    return _phone_digits(x, country_code)


def meta_name(x: str) -> str:
    """Lowercase letters of any script, in NFC; no punctuation, spaces or digits (Meta FN/LN).

    Meta: "Use a-z only. Lowercase only, no punctuation. Special characters in UTF-8 format."
    """
    letters = f"regexp_replace(lower({text(x)}), '[^\\p{{L}}\\p{{M}}]', '', 'g')"
    return f"NULLIF(nfc_normalize({letters}), '')"


def first_initial(x: str) -> str:
    """First letter of the normalized first name (Meta FI).

    Meta: "Use a-z only. Lowercase only. Special characters in UTF-8 format."
    """
    return f"left({meta_name(x)}, 1)"


def meta_city(x: str) -> str:
    """a-z only (Meta CT).

    Meta: "Use a-z only. Lowercase only, with no punctuation, no special characters, and no
    white space."
    """
    return f"NULLIF({_roman_letters(text(x))}, '')"


def us_state(x: str) -> str:
    """US states as their two-letter code, other states a-z only (Meta ST).

    Meta: "Use the 2-character ANSI abbreviation code, lowercase. Normalize states outside the
    US in lowercase, with no punctuation, no special characters, and no white space." A full US
    state name becomes its code (New York -> ny); any other value is kept, reduced to a-z, as
    Meta's SDKs do (they also drop digits).
    """
    r = _roman_letters(text(x))
    return f"NULLIF(coalesce({_map(r, US_STATES)}, {r}), '')"


def postal(x: str) -> str:
    """Lowercase letters and digits only; a US ZIP or ZIP+4 cut to five digits (Meta ZIP).

    Meta: "Use lowercase, and no white space. For the US, use only the first 5 digits. For the
    UK, use the Area/District/Sector format." (Meta's own UK example is the whole postcode,
    "m11ae".) Dashes and other punctuation go too, as Meta's Conversions API asks ("no dash").
    """
    z = f"regexp_replace(lower({text(x)}), '[^a-z0-9]', '', 'g')"
    return f"NULLIF(regexp_replace({z}, '^([0-9]{{5}})[0-9]{{4}}$', '\\1'), '')"


def country(x: str) -> str:
    """ISO 3166-1 alpha-2, lowercase; common names mapped; NULL for anything else (Meta COUNTRY).

    Meta: "Use lowercase, 2-letter country codes in ISO 3166-1 alpha-2."
    """
    accepted = {code: code for code in sorted(ISO_COUNTRY_CODES)} | COUNTRIES
    return _map(_roman_letters(text(x)), accepted)


def gender(x: str) -> str:
    """'m' or 'f'; anything else is NULL (Meta GEN: "m for male, f for female")."""
    return _map(f"lower({text(x)})", {"m": "m", "male": "m", "f": "f", "female": "f"})


def _birth_date(x: str) -> str:
    """The date in a DATE, TIMESTAMP or text value; NULL unless its year is 1900..this year."""
    basic_to_iso = f"regexp_replace({text(x)}, {_lit(BASIC_DATE_PATTERN)}, '\\1-\\2-\\3')"
    iso = f"regexp_extract({basic_to_iso}, {_lit('^' + ISO_DATE_PATTERN + '$')}, 1)"
    d = f"TRY_CAST(replace({iso}, '/', '-') AS DATE)"
    return f"CASE WHEN year({d}) BETWEEN {FIRST_BIRTH_YEAR} AND year(current_date) THEN {d} END"


def _date_part(x: str, fmt: str) -> str:
    return f"strftime({_birth_date(x)}, {_lit(fmt)})"


def birth_year(x: str) -> str:
    """Four-digit year of a birth date (Meta DOBY: "YYYY format: 1900 to the current year")."""
    return _date_part(x, "%Y")


def birth_month(x: str) -> str:
    """Two-digit month of a birth date (Meta DOBM: "MM format: 01 to 12")."""
    return _date_part(x, "%m")


def birth_day(x: str) -> str:
    """Two-digit day of a birth date (Meta DOBD: "DD format: 01 to 31")."""
    return _date_part(x, "%d")


def mobile_ad_id(x: str) -> str:
    """Lowercase IDFA/AAID with hyphens; NULL when malformed or the all-zero opt-out id.

    Meta MADID: "Use all lowercase, and keep hyphens." TikTok MAID: "all uppercase or all
    lowercase - Remove any spaces at the beginning or end".
    """
    return f"NULLIF({_matching(f'lower({text(x)})', MOBILE_AD_ID_PATTERN)}, {_lit(ZERO_AD_ID)})"


def sha256(raw: str, normalized: str, *, kind: str | None = None) -> str:
    """SHA-256 hex of ``normalized``; an already-hashed raw value passes through lowercased.

    For a ``kind`` in ``DERIVED_KINDS`` it is NULL instead: a digest of the whole source value
    cannot give a part of it (the initial of a hashed first name, the year of a hashed date).
    """
    r = text(raw)
    digest = "NULL" if kind in DERIVED_KINDS else f"lower({r})"
    return f"CASE WHEN {is_digest(r)} THEN {digest} ELSE sha256({normalized}) END"


def is_digest(x: str) -> str:
    """Whether the trimmed value is a SHA-256 hex digest already.

    The byte length is tested first: it is cheap and rules out nearly every value, and DuckDB
    evaluates the pattern only on the rows left (a digest is 64 ASCII characters, 64 bytes).
    """
    r = text(x)
    return f"(strlen({r}) = 64 AND regexp_full_match({r}, {_lit(SHA256_PATTERN)}))"


_SIMPLE: dict[str, Callable[[str], str]] = {
    "text": text,
    "email": email,
    "email_no_tag": email_no_tag,
    "meta_name": meta_name,
    "meta_city": meta_city,
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
