"""Deterministic fake "Merged Customers" table (one row per customer, CDP style) in DuckDB.

This is the embedded default source for the demo, the tests and the benchmarks. Every value is
fake: e-mail addresses use only reserved domains (RFC 2606 ``example.*``), US phone numbers use
the fictional 555-01XX lines and foreign ones use ranges set aside for drama where they exist.
The data is deliberately messy in the ways real CDP exports are (case, whitespace, NULLs, mixed
phone formats, malformed values) so that downstream normalisation code has something to chew on.

Generation is vectorized (numpy + pyarrow compute) and chunked, so memory stays bounded at
millions of rows. Run ``python -m campaign_sync.sample_data --rows 1000000 out.duckdb`` or call
:func:`generate_merged_customers`.
"""

from __future__ import annotations

import argparse
import math
import operator
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["COLUMNS", "generate_merged_customers", "main"]

CHUNK_ROWS = 250_000
# DuckDB's buffer pool defaults to 80% of RAM and keeps written blocks cached; capping it keeps a
# 10M-row build at ~1.3 GB RSS instead of growing with the table (and is slightly faster).
DUCKDB_MEMORY_LIMIT = "1GB"
# Customer ids are 'MC' + 9 digits, so that is the most rows we can number uniquely.
MAX_ROWS = 1_000_000_000
# A fixed "today" keeps the output independent of the wall clock (ages, timestamps).
AS_OF = datetime(2025, 6, 30)
HISTORY_START = datetime(2015, 1, 1)

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

COLUMNS: tuple[tuple[str, str], ...] = (
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
)

# --------------------------------------------------------------------------------------------
# Built-in vocabularies. Kept small on purpose; accents and apostrophes exercise unicode paths.
# --------------------------------------------------------------------------------------------

# fmt: off

_FEMALE_NAMES = (
    "Emma", "Olivia", "Ava", "Sophia", "Isabella", "Mia", "Charlotte", "Amelia", "Harper",
    "Evelyn", "Abigail", "Emily", "Elizabeth", "Sofia", "Ella", "Scarlett", "Grace", "Chloe",
    "Camila", "Zoë", "Renée", "Chloé", "María", "Siobhan", "Aoife", "Priya", "Mei", "Yuki",
    "Fatima", "Aisha", "Ana", "Léa", "Inès", "Jane", "Sarah", "Jessica", "Ashley", "Jennifer",
    "Linh", "Mary Ann",
)
_MALE_NAMES = (
    "Liam", "Noah", "Oliver", "Elijah", "James", "William", "Benjamin", "Lucas", "Henry",
    "Alexander", "Mason", "Michael", "Ethan", "Daniel", "Jacob", "Logan", "Jackson", "Sebastian",
    "José", "François", "Jürgen", "Søren", "Björn", "Seán", "Mohammed", "Omar", "Raj", "Arjun",
    "Wei", "Hiroshi", "Minh", "Diego", "Mateo", "Luis", "Juan", "John", "David", "Robert",
    "Chris", "Kevin",
)
_NEUTRAL_NAMES = (
    "Alex", "Jordan", "Taylor", "Morgan", "Riley", "Casey", "Jamie", "Quinn", "Avery", "Sam",
)
_SURNAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "O'Brien", "O'Connor", "D'Angelo",
    "Nguyễn", "Trần", "Lê", "Müller", "Schmidt", "Schröder", "Weiß", "Dubois", "Lefèvre",
    "Moreau", "García", "Peña", "Núñez", "Muñoz", "Kowalski", "Novák", "Åberg", "Østergaard",
    "Kim", "Park", "Chen", "Wang", "Li", "Zhang", "Patel", "Shah", "Singh", "Kumar", "Cohen",
    "Levi", "Murphy", "Kelly", "MacDonald", "McCarthy", "van der Berg", "De la Cruz",
    "Smith-Jones",
)

# Reserved example domains only (RFC 2606), weighted like a few big providers plus a long tail.
_EMAIL_DOMAINS = (
    ("example.com", 0.34), ("example.net", 0.14), ("example.org", 0.10),
    ("mail.example.com", 0.14), ("mail.example.net", 0.06), ("inbox.example.org", 0.06),
    ("corp.example.com", 0.05), ("email.example.com", 0.05), ("post.example.net", 0.04),
    ("shop.example.org", 0.02),
)
_EMAIL_TAGS = ("news", "shop", "promo", "deals", "work", "spam", "2024", "orders")

_JUNK_PHONES = (
    "555-01", "n/a", "N/A", "0000000", "12", "+1 (000)", "none", "-", "123", "1111111111",
    "000-000-0000", "x",
)

_LIFECYCLE = (
    ("active", 0.35), ("cooling down", 0.25), ("at risk", 0.20), ("lapsed", 0.12), ("new", 0.08),
)
# Per lifecycle status: CLV multiplier, share with no purchase yet (CLV 0), and the Beta(a, b)
# shape of "how far between created_at and AS_OF was the last update" (recent for active).
_LIFECYCLE_CLV_MULT = np.array([1.6, 1.0, 0.8, 0.5, 0.35])
_LIFECYCLE_ZERO_CLV = np.array([0.0, 0.0, 0.0, 0.0, 0.25])
_LIFECYCLE_UPDATE_BETA = np.array([[6.0, 1.0], [3.0, 1.5], [2.0, 2.0], [1.0, 3.0], [2.0, 1.0]])
_CLV_MEDIAN = 120.0
_CLV_SIGMA = 1.0
_HIGH_VALUE_SHARE = 0.30

# Countries: 0 = US, 1 = GB, 2 = DE, 3 = FR. Labels are messy the way free-text forms are.
_COUNTRY_WEIGHTS = (0.91, 0.04, 0.03, 0.02)
_COUNTRY_LABELS = ("US", "United States", "us", "USA", "GB", "UK", "United Kingdom", "DE",
                   "Germany", "FR", "France", None)
_COUNTRY_LABEL_WEIGHTS = (
    (0.90, 0.04, 0.03, 0.01, 0, 0, 0, 0, 0, 0, 0, 0.02),
    (0, 0, 0, 0, 0.85, 0.05, 0.05, 0, 0, 0, 0, 0.05),
    (0, 0, 0, 0, 0, 0, 0, 0.90, 0.05, 0, 0, 0.05),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0.90, 0.05, 0.05),
)

# (country, city, state/region code, state/region full name, postal low, postal high, weight)
# US postal ranges are real ZIP ranges for the city; GB rows use _GB_OUTWARD instead.
_CITIES: tuple[tuple[int, str, str, str, int, int, float], ...] = (
    (0, "New York", "NY", "New York", 10001, 10282, 8.0),
    (0, "Brooklyn", "NY", "New York", 11201, 11256, 3.0),
    (0, "Los Angeles", "CA", "California", 90001, 90089, 6.0),
    (0, "San Francisco", "CA", "California", 94102, 94134, 3.0),
    (0, "San Diego", "CA", "California", 92101, 92154, 2.5),
    (0, "San Jose", "CA", "California", 95110, 95139, 2.0),
    (0, "Chicago", "IL", "Illinois", 60601, 60661, 4.5),
    (0, "Houston", "TX", "Texas", 77002, 77099, 4.0),
    (0, "Austin", "TX", "Texas", 78701, 78759, 2.0),
    (0, "Dallas", "TX", "Texas", 75201, 75254, 2.5),
    (0, "Phoenix", "AZ", "Arizona", 85003, 85054, 3.0),
    (0, "Philadelphia", "PA", "Pennsylvania", 19102, 19154, 3.0),
    (0, "Seattle", "WA", "Washington", 98101, 98199, 2.5),
    (0, "Portland", "OR", "Oregon", 97201, 97236, 1.5),
    (0, "Denver", "CO", "Colorado", 80202, 80239, 2.0),
    (0, "Boston", "MA", "Massachusetts", 2108, 2137, 2.0),
    (0, "Providence", "RI", "Rhode Island", 2903, 2940, 0.6),
    (0, "Newark", "NJ", "New Jersey", 7102, 7114, 1.0),
    (0, "Miami", "FL", "Florida", 33125, 33199, 2.0),
    (0, "Orlando", "FL", "Florida", 32801, 32839, 1.5),
    (0, "Atlanta", "GA", "Georgia", 30303, 30350, 2.0),
    (0, "Minneapolis", "MN", "Minnesota", 55401, 55488, 1.5),
    (0, "Detroit", "MI", "Michigan", 48201, 48243, 1.5),
    (0, "Nashville", "TN", "Tennessee", 37201, 37250, 1.5),
    (0, "Charlotte", "NC", "North Carolina", 28202, 28280, 1.5),
    (0, "Columbus", "OH", "Ohio", 43085, 43235, 1.5),
    (0, "Salt Lake City", "UT", "Utah", 84101, 84150, 1.0),
    (0, "Las Vegas", "NV", "Nevada", 89101, 89199, 1.5),
    (0, "Washington", "DC", "District of Columbia", 20001, 20099, 1.5),
    (1, "London", "England", "England", 0, 0, 6.0),
    (1, "Manchester", "England", "England", 0, 0, 1.5),
    (1, "Birmingham", "England", "England", 0, 0, 1.5),
    (1, "Bristol", "England", "England", 0, 0, 1.0),
    (1, "Leeds", "England", "England", 0, 0, 1.0),
    (1, "Edinburgh", "Scotland", "Scotland", 0, 0, 1.0),
    (1, "Glasgow", "Scotland", "Scotland", 0, 0, 1.0),
    (2, "Berlin", "BE", "Berlin", 10115, 14199, 3.0),
    (2, "München", "BY", "Bayern", 80331, 81929, 2.0),
    (2, "Hamburg", "HH", "Hamburg", 20095, 22769, 2.0),
    (2, "Köln", "NW", "Nordrhein-Westfalen", 50667, 51149, 1.5),
    (2, "Frankfurt am Main", "HE", "Hessen", 60306, 60599, 1.5),
    (3, "Paris", "IDF", "Île-de-France", 75001, 75020, 4.0),
    (3, "Lyon", "ARA", "Auvergne-Rhône-Alpes", 69001, 69009, 1.5),
    (3, "Marseille", "PAC", "Provence-Alpes-Côte d'Azur", 13001, 13016, 1.5),
    (3, "Toulouse", "OCC", "Occitanie", 31000, 31500, 1.0),
    (3, "Bordeaux", "NAQ", "Nouvelle-Aquitaine", 33000, 33800, 1.0),
    (3, "Nice", "PAC", "Provence-Alpes-Côte d'Azur", 6000, 6300, 1.0),
)
_GB_OUTWARD: dict[str, tuple[str, ...]] = {
    "London": ("SW1A", "EC1A", "W1D", "N1", "E14", "SE1", "NW3", "WC2N"),
    "Manchester": ("M1", "M4", "M14", "M20"),
    "Birmingham": ("B1", "B5", "B15", "B29"),
    "Bristol": ("BS1", "BS6", "BS8"),
    "Leeds": ("LS1", "LS6", "LS17"),
    "Edinburgh": ("EH1", "EH3", "EH10"),
    "Glasgow": ("G1", "G12", "G41"),
}
# Letters used in the inward part of UK postcodes (C, I, K, M, O and V are never used there).
_GB_INWARD_LETTERS = tuple("ABDEFGHJLNPQRSTUWXYZ")

_US_STREETS = (
    "Main", "Market", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill",
    "Park", "Sunset", "Mission", "Valencia", "Lincoln", "Jefferson", "Highland", "2nd", "3rd",
    "5th", "Church", "Spring", "Ridge", "Walnut", "Willow", "Madison", "Franklin", "Chestnut",
)
_US_STREET_TYPES = ("St", "Street", "Ave", "Avenue", "Blvd", "Rd", "Road", "Dr", "Ln", "Way",
                    "Ct", "St.", "Pl")
_GB_STREETS = ("High", "Station", "Church", "Baker", "Victoria", "King", "Queen", "Mill",
               "Park", "London", "Manor", "Green")
_GB_STREET_TYPES = ("Street", "Road", "Lane", "Close", "Avenue", "Way", "Gardens", "Terrace")
_DE_STREETS = ("Haupt", "Bahnhof", "Garten", "Schul", "Linden", "Berg", "Kirch", "Wald",
               "Goethe", "Schiller", "Rosen", "Mühlen", "Eichen")
_DE_STREET_TYPES = ("straße", "str.", "weg", "allee", "platz", "ring")
_FR_STREET_TYPES = ("rue", "avenue", "boulevard", "place", "allée", "impasse")
_FR_STREETS = ("de la Paix", "Victor Hugo", "Saint-Michel", "des Lilas", "du Moulin",
               "Jean Jaurès", "de Rivoli", "de la République", "Pasteur", "des Écoles")
_ADDRESS2 = ("Apt ", "Apt. ", "Suite ", "Unit ", "#", "Fl ", "Flat ")
# fmt: on


# --------------------------------------------------------------------------------------------
# Small vectorized helpers.
# --------------------------------------------------------------------------------------------

# Folding for e-mail local parts: NFKD strips most accents; these letters do not decompose.
_FOLD = str.maketrans(
    {
        "ß": "ss",
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "œ": "oe",
        "Œ": "OE",
    }
)


def _slug(name: str) -> str:
    """ASCII, lowercase, letters/digits only: 'Nguyễn' -> 'nguyen', "O'Brien" -> 'obrien'."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_FOLD))
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum()).lower()


def _strings(values: Sequence[str | None]) -> pa.Array:
    return pa.array(list(values), type=pa.string())


_GIVEN_NAMES = _FEMALE_NAMES + _MALE_NAMES + _NEUTRAL_NAMES
_GIVEN_ARR = _strings(_GIVEN_NAMES)
_GIVEN_SLUG = _strings([_slug(n) for n in _GIVEN_NAMES])
_SURNAME_ARR = _strings(_SURNAMES)
_SURNAME_SLUG = _strings([_slug(n) for n in _SURNAMES])
# Offsets of the female / male / neutral blocks inside _GIVEN_NAMES.
_GIVEN_BLOCKS = (
    (0, len(_FEMALE_NAMES)),
    (len(_FEMALE_NAMES), len(_MALE_NAMES)),
    (len(_FEMALE_NAMES) + len(_MALE_NAMES), len(_NEUTRAL_NAMES)),
)

_CITY_NAME = _strings([c[1] for c in _CITIES])
_CITY_STATE = _strings([c[2] for c in _CITIES])
_CITY_STATE_FULL = _strings([c[3] for c in _CITIES])
_CITY_POSTAL_LO = np.array([c[4] for c in _CITIES], dtype=np.int64)
_CITY_POSTAL_HI = np.array([c[5] for c in _CITIES], dtype=np.int64)
_CITY_WEIGHTS_BY_COUNTRY = tuple(
    tuple(c[6] if c[0] == country else 0.0 for c in _CITIES) for country in range(4)
)
# Per city, the slice of _GB_OUTWARD_FLAT holding its postcode districts. Non-GB cities get the
# harmless slice [0, 1) because postal candidates are computed for every row before selection.
_GB_OUTWARD_FLAT = _strings([code for c in _CITIES if c[0] == 1 for code in _GB_OUTWARD[c[1]]])
_GB_COUNTS = np.array([len(_GB_OUTWARD[c[1]]) if c[0] == 1 else 0 for c in _CITIES])
_CITY_OUTWARD_OFF = np.where(_GB_COUNTS > 0, np.cumsum(_GB_COUNTS) - _GB_COUNTS, 0)
_CITY_OUTWARD_CNT = np.maximum(_GB_COUNTS, 1)


def _choice(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    """n weighted draws of option indices (zero-weight options are never drawn)."""
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    idx = np.searchsorted(cum / cum[-1], rng.random(n), side="right")
    return np.minimum(idx, len(cum) - 1).astype(np.int64)


def _choice_by_group(
    rng: np.random.Generator, groups: np.ndarray, tables: Sequence[Sequence[float]]
) -> np.ndarray:
    """Weighted draws where row i uses the weights tables[groups[i]] over a shared option set."""
    out = np.zeros(len(groups), dtype=np.int64)
    for g, weights in enumerate(tables):
        mask = groups == g
        out[mask] = _choice(rng, int(mask.sum()), weights)
    return out


def _flag(rng: np.random.Generator, n: int, p: float | np.ndarray) -> np.ndarray:
    return rng.random(n) < p


def _str(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(pa.string())


def _zpad(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_str(values), width=width, padding="0")


def _cat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise string concatenation; NULL in any part gives NULL."""
    return pc.binary_join_element_wise(*parts, "")


def _const(value: str, n: int) -> pa.Array:
    return pa.array([value], type=pa.string()).take(np.zeros(n, dtype=np.int64))


def _pick(values: pa.Array, u: np.ndarray) -> pa.Array:
    """Map uniforms in [0, 1) to elements of a small array."""
    return values.take(np.minimum((u * len(values)).astype(np.int64), len(values) - 1))


Builder = Callable[[np.ndarray], pa.Array] | None


def _assemble(kind: np.ndarray, builders: Sequence[Builder]) -> pa.Array:
    """Build a string column piecewise: rows with kind == k come from builders[k](row_indices).

    Each builder only sees its own rows, so expensive variants cost nothing for rows that do not
    use them. A None builder yields NULLs. Pieces are stitched back into row order with one take.
    """
    n = len(kind)
    pieces: list[pa.Array] = []
    order: list[np.ndarray] = []
    for k, build in enumerate(builders):
        idx = np.flatnonzero(kind == k)
        if idx.size == 0:
            continue
        piece = pa.nulls(idx.size, pa.string()) if build is None else build(idx)
        pieces.append(piece.cast(pa.string()))
        order.append(idx)
    positions = np.empty(n, dtype=np.int64)
    positions[np.concatenate(order)] = np.arange(n, dtype=np.int64)
    return pa.concat_arrays(pieces).take(positions)


def _uuids(rng: np.random.Generator, n: int, *, upper: bool) -> pa.Array:
    """Random version-4 UUID strings, built as one byte matrix instead of n Python objects."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    alphabet = b"0123456789ABCDEF" if upper else b"0123456789abcdef"
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    hex_cols = [c for c in range(36) if c not in (8, 13, 18, 23)]
    text[:, hex_cols] = np.frombuffer(alphabet, dtype=np.uint8)[nibbles]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def _messy_text(rng: np.random.Generator, clean: pa.Array, shares: Sequence[float]) -> pa.Array:
    """Apply form-entry mess. shares = (clean, NULL, UPPER, lower, leading sp, trailing sp)."""
    kind = _choice(rng, len(clean), shares)
    return _assemble(
        kind,
        [
            lambda i: clean.take(i),
            None,
            lambda i: pc.utf8_upper(clean.take(i)),
            lambda i: pc.utf8_lower(clean.take(i)),
            lambda i: _cat(" ", clean.take(i)),
            lambda i: _cat(clean.take(i), "  "),
        ],
    )


def _high_value_threshold() -> float:
    """CLV at the (1 - _HIGH_VALUE_SHARE) quantile of the generating mixture distribution.

    Solved analytically (bisection on the mixture CDF) so the flag is consistent across chunks
    without a second pass over the data.
    """
    weights = np.array([w for _, w in _LIFECYCLE])
    target = 1.0 - _HIGH_VALUE_SHARE

    def cdf(x: float) -> float:
        total = 0.0
        for w, mult, zero in zip(weights, _LIFECYCLE_CLV_MULT, _LIFECYCLE_ZERO_CLV, strict=True):
            z = math.log(x / (_CLV_MEDIAN * mult)) / _CLV_SIGMA
            total += w * (zero + (1.0 - zero) * 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))))
        return total

    lo, hi = 1e-6, 1e9
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if cdf(mid) < target else (lo, mid)
    return round(hi, 2)


_HIGH_VALUE_THRESHOLD = _high_value_threshold()


# --------------------------------------------------------------------------------------------
# Column builders. Each takes the chunk's RNG and returns arrays for one group of columns.
# --------------------------------------------------------------------------------------------


def _emails(
    rng: np.random.Generator, given_idx: np.ndarray, surname_idx: np.ndarray, birth_year: np.ndarray
) -> pa.Array:
    n = len(given_idx)
    first = _GIVEN_SLUG.take(given_idx)
    last = _SURNAME_SLUG.take(surname_idx)
    init = pc.utf8_slice_codeunits(first, 0, 1)
    last_init = pc.utf8_slice_codeunits(last, 0, 1)

    pattern = _choice(rng, n, (0.30, 0.15, 0.14, 0.08, 0.10, 0.07, 0.08, 0.08))
    base = _assemble(
        pattern,
        [
            lambda i: _cat(first.take(i), ".", last.take(i)),
            lambda i: _cat(first.take(i), last.take(i)),
            lambda i: _cat(init.take(i), last.take(i)),
            lambda i: _cat(first.take(i), "_", last.take(i)),
            lambda i: first.take(i),
            lambda i: _cat(last.take(i), ".", first.take(i)),
            lambda i: _cat(init.take(i), ".", last.take(i)),
            lambda i: _cat(first.take(i), last_init.take(i)),
        ],
    )

    # Digits keep accidental duplicates rare: only full-name patterns may go without them or
    # with just two; short patterns (initials, bare first name) get long numbers instead.
    suffix = _choice(rng, n, (0.05, 0.14, 0.14, 0.30, 0.37))
    suffix[np.isin(suffix, (0, 3)) & ~np.isin(pattern, (0, 1, 3, 5))] = 4
    suffix[pattern == 4] = 4
    small = rng.integers(1, 100, n)
    large = rng.integers(100, 100_000, n)
    numbered = _assemble(
        suffix,
        [
            lambda i: base.take(i),
            lambda i: _cat(base.take(i), _str(birth_year[i])),
            lambda i: _cat(base.take(i), _zpad(birth_year[i] % 100, 2)),
            lambda i: _cat(base.take(i), _str(small[i])),
            lambda i: _cat(base.take(i), _str(large[i])),
        ],
    )
    tag_u = rng.random(n)
    local = _assemble(
        _flag(rng, n, 0.07).astype(np.int64),
        [
            lambda i: numbered.take(i),
            lambda i: _cat(numbered.take(i), "+", _pick(_strings(_EMAIL_TAGS), tag_u[i])),
        ],
    )
    domain = _strings([d for d, _ in _EMAIL_DOMAINS]).take(
        _choice(rng, n, [w for _, w in _EMAIL_DOMAINS])
    )

    valid_mess = (0.85, 0.03, 0.04, 0.025, 0.03, 0.015, 0.01)
    malformed = (0.2, 0.2, 0.15, 0.1, 0.1, 0.1, 0.1, 0.05)
    kind = _choice(
        rng, n, [0.90 * w for w in valid_mess] + [0.05, 0.02] + [0.03 * w for w in malformed]
    )

    def addr(i: np.ndarray) -> pa.Array:
        return _cat(local.take(i), "@", domain.take(i))

    def title(i: np.ndarray) -> pa.Array:
        return _cat(pc.utf8_title(local.take(i)), "@", domain.take(i))

    return _assemble(
        kind,
        [
            # valid, sometimes with case / whitespace mess
            addr,
            lambda i: pc.utf8_upper(addr(i)),
            title,
            lambda i: _cat(" ", addr(i)),
            lambda i: _cat(addr(i), " "),
            lambda i: _cat(title(i), "  "),
            lambda i: _cat(addr(i), "\t"),
            # missing
            None,
            lambda i: _const("", len(i)),
            # malformed
            lambda i: _cat(local.take(i), "@"),
            lambda i: _cat(local.take(i), " at ", domain.take(i)),
            lambda i: _cat(local.take(i), ".", domain.take(i)),
            lambda i: _cat(init.take(i), "@", last_init.take(i)),
            lambda i: _cat(local.take(i), "@@", domain.take(i)),
            lambda i: _cat(local.take(i), "@example"),
            lambda i: _cat(first.take(i), " ", last.take(i), "@", domain.take(i)),
            lambda i: _cat(local.take(i), "@", pc.replace_substring(domain.take(i), ".", ",")),
        ],
    )


def _us_phones(rng: np.random.Generator, n: int) -> pa.Array:
    """Fictional NANP numbers: NXX area code, 555 exchange, 01XX line, in mixed formats."""
    area = rng.integers(2, 10, n) * 100 + rng.integers(0, 9, n) * 10 + rng.integers(0, 10, n)
    a = _str(area)
    e = "555"
    line = _zpad(100 + rng.integers(0, 100, n), 4)
    fmt = _choice(rng, n, (0.20, 0.20, 0.08, 0.20, 0.07, 0.10, 0.15))
    return _assemble(
        fmt,
        [
            lambda i: _cat("(", a.take(i), ") ", e, "-", line.take(i)),
            lambda i: _cat(a.take(i), "-", e, "-", line.take(i)),
            lambda i: _cat(a.take(i), ".", e, ".", line.take(i)),
            lambda i: _cat(a.take(i), e, line.take(i)),
            lambda i: _cat("1-", a.take(i), "-", e, "-", line.take(i)),
            lambda i: _cat("+1 ", a.take(i), " ", e, " ", line.take(i)),
            lambda i: _cat("+1", a.take(i), e, line.take(i)),
        ],
    )


def _intl_phones(rng: np.random.Generator, country: np.ndarray) -> pa.Array:
    """GB / DE / FR numbers in E.164-ish and 00-prefixed styles (country in 1..3)."""
    n = len(country)
    r3 = _zpad(rng.integers(0, 1000, n), 3)
    r7 = _zpad(rng.integers(0, 10_000_000, n), 7)
    r8 = _zpad(rng.integers(0, 100_000_000, n), 8)
    r4 = rng.integers(0, 10_000, n)
    hi, lo = _zpad(r4 // 100, 2), _zpad(r4 % 100, 2)
    variant = (country - 1) * 3 + rng.integers(0, 3, n)
    return _assemble(
        variant,
        [
            # Ofcom drama ranges: 020 7946 0xxx (London) and 07700 900xxx (mobile).
            lambda i: _cat("+44 20 7946 0", r3.take(i)),
            lambda i: _cat("0044 20 7946 0", r3.take(i)),
            lambda i: _cat("+44 7700 900", r3.take(i)),
            lambda i: _cat("+49 30 ", r7.take(i)),
            lambda i: _cat("0049 30 ", r7.take(i)),
            lambda i: _cat("+49 151 ", r8.take(i)),
            # ARCEP fiction range 01 99 00 xx xx.
            lambda i: _cat("+33 1 99 00 ", hi.take(i), " ", lo.take(i)),
            lambda i: _cat("0033 1 99 00 ", hi.take(i), " ", lo.take(i)),
            lambda i: _cat("+33199 00", hi.take(i), lo.take(i)),
        ],
    )


def _phones(rng: np.random.Generator, country: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Phone column plus a mask of rows holding a usable number (drives sms_opt_in)."""
    n = len(country)
    kind = _choice(rng, n, (0.75, 0.0, 0.20, 0.05))  # 0 = number, 2 = NULL, 3 = junk
    # Foreign customers get foreign numbers; a few US ones do too, for ~10% international.
    has_number = kind == 0
    intl = has_number & ((country != 0) | _flag(rng, n, 0.048))
    kind[intl] = 1
    intl_country = np.where(country != 0, country, 1 + _choice(rng, n, (0.40, 0.35, 0.25)))
    junk_u = rng.random(n)
    phone = _assemble(
        kind,
        [
            lambda i: _us_phones(rng, len(i)),
            lambda i: _intl_phones(rng, intl_country[i]),
            None,
            lambda i: _pick(_strings(_JUNK_PHONES), junk_u[i]),
        ],
    )
    return phone, has_number


def _location(rng: np.random.Generator, n: int) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Address columns plus the underlying country key (0 US, 1 GB, 2 DE, 3 FR)."""
    country = _choice(rng, n, _COUNTRY_WEIGHTS)
    city_idx = _choice_by_group(rng, country, _CITY_WEIGHTS_BY_COUNTRY)
    # Log-uniform US house numbers (1..9999); European streets are numbered much lower.
    house = np.minimum(9999, (10 ** (rng.random(n) * 4)).astype(np.int64))
    house = np.where(country == 0, house, 1 + house % 150)
    num = _str(house)
    u_street, u_type = rng.random(n), rng.random(n)

    clean_address = _assemble(
        country,
        [
            lambda i: _cat(
                num.take(i),
                " ",
                _pick(_strings(_US_STREETS), u_street[i]),
                " ",
                _pick(_strings(_US_STREET_TYPES), u_type[i]),
            ),
            lambda i: _cat(
                num.take(i),
                " ",
                _pick(_strings(_GB_STREETS), u_street[i]),
                " ",
                _pick(_strings(_GB_STREET_TYPES), u_type[i]),
            ),
            lambda i: _cat(
                _pick(_strings(_DE_STREETS), u_street[i]),
                _pick(_strings(_DE_STREET_TYPES), u_type[i]),
                " ",
                num.take(i),
            ),
            lambda i: _cat(
                num.take(i),
                " ",
                _pick(_strings(_FR_STREET_TYPES), u_type[i]),
                " ",
                _pick(_strings(_FR_STREETS), u_street[i]),
            ),
        ],
    )
    address = _messy_text(rng, clean_address, (0.94, 0.04, 0.02, 0.0, 0.0, 0.0))

    unit = _str(rng.integers(1, 450, n))
    letter = _pick(_strings(tuple("ABCDEF")), rng.random(n))
    address2 = _assemble(
        _choice(rng, n, (0.86, 0.06, 0.03, 0.02, 0.03)),
        [
            None,
            lambda i: _cat(_pick(_strings(_ADDRESS2), rng.random(len(i))), unit.take(i)),
            lambda i: _cat("Apt ", unit.take(i), letter.take(i)),
            lambda i: _cat("Suite ", unit.take(i), "0"),
            lambda i: pc.utf8_upper(_cat("apt ", unit.take(i))),
        ],
    )

    city = _messy_text(rng, _CITY_NAME.take(city_idx), (0.93, 0.02, 0.015, 0.025, 0.0, 0.01))

    state_kind = _choice_by_group(
        rng, (country != 0).astype(np.int64), ((0.82, 0.08, 0.05, 0.05), (0.30, 0.0, 0.0, 0.70))
    )
    state = _assemble(
        state_kind,
        [
            lambda i: _CITY_STATE.take(city_idx[i]),
            lambda i: _CITY_STATE_FULL.take(city_idx[i]),
            lambda i: pc.utf8_lower(_CITY_STATE.take(city_idx[i])),
            None,
        ],
    )

    lo, hi = _CITY_POSTAL_LO[city_idx], _CITY_POSTAL_HI[city_idx]
    code = lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64)
    plus4 = _zpad(rng.integers(0, 10_000, n), 4)
    outward = _GB_OUTWARD_FLAT.take(
        _CITY_OUTWARD_OFF[city_idx] + (rng.random(n) * _CITY_OUTWARD_CNT[city_idx]).astype(np.int64)
    )
    letters = _strings(_GB_INWARD_LETTERS)
    inward = _cat(
        _str(rng.integers(0, 10, n)), _pick(letters, rng.random(n)), _pick(letters, rng.random(n))
    )
    # 0 5-digit, 1 ZIP+4, 2 leading zero lost (spreadsheet damage), 3-5 GB styles, 6 NULL.
    postal_kind = _choice_by_group(
        rng,
        country,
        (
            (0.80, 0.15, 0.02, 0, 0, 0, 0.03),
            (0, 0, 0, 0.87, 0.07, 0.03, 0.03),
            (0.97, 0, 0, 0, 0, 0, 0.03),
            (0.97, 0, 0, 0, 0, 0, 0.03),
        ),
    )
    postal_kind[(postal_kind == 2) & (code >= 10_000)] = 0
    postal = _assemble(
        postal_kind,
        [
            lambda i: _zpad(code[i], 5),
            lambda i: _cat(_zpad(code[i], 5), "-", plus4.take(i)),
            lambda i: _str(code[i]),
            lambda i: _cat(outward.take(i), " ", inward.take(i)),
            lambda i: _cat(outward.take(i), inward.take(i)),
            lambda i: pc.utf8_lower(_cat(outward.take(i), " ", inward.take(i))),
            None,
        ],
    )

    labels = _strings(_COUNTRY_LABELS)
    country_label = labels.take(_choice_by_group(rng, country, _COUNTRY_LABEL_WEIGHTS))
    return {
        "address": address,
        "address2": address2,
        "city": city,
        "state": state,
        "postal": postal,
        "country": country_label,
    }, country


def _timestamps(rng: np.random.Generator, lifecycle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(lifecycle)
    as_of = np.datetime64(AS_OF, "s").astype(np.int64)
    start = np.datetime64(HISTORY_START, "s").astype(np.int64)
    recent = 90 * 86_400
    # Sign-ups grow over time, hence the power skew toward recent dates; 'new' = last 90 days.
    span = as_of - recent - start
    created = start + (span * rng.random(n) ** (1 / 1.7)).astype(np.int64)
    is_new = lifecycle == 4
    created[is_new] = as_of - (rng.random(int(is_new.sum())) * recent).astype(np.int64)
    shape = _LIFECYCLE_UPDATE_BETA[lifecycle]
    updated = created + ((as_of - created) * rng.beta(shape[:, 0], shape[:, 1])).astype(np.int64)
    return (
        created.astype("datetime64[s]").astype("datetime64[us]"),
        updated.astype("datetime64[s]").astype("datetime64[us]"),
    )


def _feistel(x: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Keyed bijection on [0, 2**30): a balanced Feistel network over two 15-bit halves."""
    left, right = x >> 15, x & 0x7FFF
    for key in keys:
        h = (right * 0x9E3779B1 + int(key)) & 0xFFFFFFFF
        h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
        left, right = right, left ^ ((h ^ (h >> 16)) & 0x7FFF)
    return (left << 15) | right


def _permute_ids(index: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Map row numbers to distinct, shuffled ids in [0, MAX_ROWS) without materialising a
    permutation of all rows. Cycle-walking keeps the 2**30 Feistel bijection inside 1e9."""
    ids = _feistel(index, keys)
    out_of_range = ids >= MAX_ROWS
    while out_of_range.any():
        ids[out_of_range] = _feistel(ids[out_of_range], keys)
        out_of_range = ids >= MAX_ROWS
    return ids


def _build_chunk(rng: np.random.Generator, start: int, n: int, keys: np.ndarray) -> pa.Table:
    """One chunk of rows [start, start + n) as a pyarrow Table in COLUMNS order."""
    ids = _permute_ids(np.arange(start, start + n, dtype=np.int64), keys)
    customer_id = _cat("MC", _zpad(ids, 9))

    sex = _choice(rng, n, (0.49, 0.49, 0.02))  # female, male, non-binary
    given_idx = np.empty(n, dtype=np.int64)
    for s, (offset, count) in enumerate(_GIVEN_BLOCKS):
        mask = sex == s
        given_idx[mask] = offset + rng.integers(0, count, int(mask.sum()))
    surname_idx = rng.integers(0, len(_SURNAMES), n)
    name_mess = (0.92, 0.03, 0.0125, 0.0125, 0.0125, 0.0125)
    given_name = _messy_text(rng, _GIVEN_ARR.take(given_idx), name_mess)
    surname = _messy_text(rng, _SURNAME_ARR.take(surname_idx), name_mess)

    # Ages 18..85 inclusive on AS_OF, skewed toward 30-50 like a typical customer base.
    as_of = AS_OF.date()
    oldest = date(as_of.year - 86, as_of.month, as_of.day) + timedelta(days=1)
    youngest = date(as_of.year - 18, as_of.month, as_of.day)
    span_days = (youngest - oldest).days
    birth = np.datetime64(youngest, "D") - (rng.beta(2.0, 3.0, n) * span_days).astype(np.int64)
    birth_year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    birthdate = pa.array(birth, type=pa.date32(), mask=_flag(rng, n, 0.10))

    gender_labels = _strings(("female", "male", "F", "M", "Female", "non-binary", None))
    gender = gender_labels.take(
        _choice_by_group(
            rng,
            sex,
            (
                (0.55, 0, 0.20, 0, 0.10, 0, 0.15),
                (0, 0.60, 0, 0.25, 0, 0, 0.15),
                (0, 0, 0, 0, 0, 0.85, 0.15),
            ),
        )
    )

    email = _emails(rng, given_idx, surname_idx, birth_year)
    location, country = _location(rng, n)
    phone, has_phone = _phones(rng, country)

    lifecycle = _choice(rng, n, [w for _, w in _LIFECYCLE])
    clv = rng.lognormal(math.log(_CLV_MEDIAN), _CLV_SIGMA, n) * _LIFECYCLE_CLV_MULT[lifecycle]
    clv[_flag(rng, n, _LIFECYCLE_ZERO_CLV[lifecycle])] = 0.0
    clv = np.round(clv, 2)

    device = _choice(rng, n, (0.52, 0.23, 0.23, 0.02))  # none, iOS, Android, both
    has_apple = (device == 1) | (device == 3)
    has_android = (device == 2) | (device == 3)
    # Limit Ad Tracking / opted-out devices report the all-zeros identifier.
    zero_id = "00000000-0000-0000-0000-000000000000"
    apple_kind = np.where(has_apple, np.where(_flag(rng, n, 0.04), 1, 0), 2)
    android_kind = np.where(has_android, np.where(_flag(rng, n, 0.01), 1, 0), 2)
    apple_ad_id = _assemble(
        apple_kind,
        [
            lambda i: _uuids(rng, len(i), upper=True),
            lambda i: _const(zero_id, len(i)),
            None,
        ],
    )
    android_ad_id = _assemble(
        android_kind,
        [
            lambda i: _uuids(rng, len(i), upper=False),
            lambda i: _const(zero_id, len(i)),
            None,
        ],
    )

    email_opt_in = _flag(rng, n, 0.80)
    # 2/3 of reachable numbers opt in, 1/5 of the rest (stale consent) => ~55% overall.
    sms_opt_in = _flag(rng, n, np.where(has_phone, 2 / 3, 0.20))
    created_at, updated_at = _timestamps(rng, lifecycle)

    columns: dict[str, pa.Array | np.ndarray] = {
        "customer_id": customer_id,
        "email": email,
        "phone": phone,
        "given_name": given_name,
        "surname": surname,
        "birthdate": birthdate,
        "gender": gender,
        **location,
        "lifecycle_status": _strings([s for s, _ in _LIFECYCLE]).take(lifecycle),
        "predicted_clv": clv,
        "is_high_value": clv >= _HIGH_VALUE_THRESHOLD,
        "apple_ad_id": apple_ad_id,
        "android_ad_id": android_ad_id,
        "email_opt_in": email_opt_in,
        "sms_opt_in": sms_opt_in,
        "created_at": created_at,
        "updated_at": updated_at,
    }
    return pa.table({name: columns[name] for name, _ in COLUMNS})


# --------------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------------


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    # DuckDB keeps a write-ahead log next to the file; a stale one would be replayed.
    Path(f"{path}.wal").unlink(missing_ok=True)


def generate_merged_customers(
    db_path: str | os.PathLike[str],
    rows: int = 100_000,
    *,
    seed: int = 7,
    table: str = "merged_customers",
) -> int:
    """Write a fake Merged Customers table of `rows` rows to the DuckDB file `db_path`.

    The file is built at ``<db_path>.tmp`` and moved into place with ``os.replace``, so readers
    never see a partial database; an existing file is replaced. Output depends only on
    (rows, seed): the same arguments always give the same table content.
    Returns the number of rows written.
    """
    rows = operator.index(rows)
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if rows > MAX_ROWS:
        raise ValueError(f"rows must be <= {MAX_ROWS:,} (customer ids have 9 digits), got {rows}")
    if not isinstance(table, str) or not _IDENT_RE.match(table):
        raise ValueError(
            f"table must be a simple SQL identifier matching {_IDENT_RE.pattern}, got {table!r}"
        )
    seed = operator.index(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")

    target = Path(db_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{target}.tmp")
    _remove(tmp)

    # The root sequence keys the id permutation; chunk k uses child k, so chunks are
    # independent streams and a chunk's content does not depend on how many follow it.
    keys = np.random.default_rng(np.random.SeedSequence(seed)).integers(0, 2**32, 6)

    ddl = ", ".join(f'"{name}" {sql_type}' for name, sql_type in COLUMNS)
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
            con.execute(f'CREATE TABLE "{table}" ({ddl})')
            for k, start in enumerate(range(0, rows, CHUNK_ROWS)):
                rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
                chunk = _build_chunk(rng, start, min(CHUNK_ROWS, rows - start), keys)
                con.register("_merged_customers_chunk", chunk)
                con.execute(f'INSERT INTO "{table}" SELECT * FROM _merged_customers_chunk')
                con.unregister("_merged_customers_chunk")
                del chunk
            con.execute("CHECKPOINT")
        finally:
            con.close()
        Path(f"{target}.wal").unlink(missing_ok=True)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    return rows


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m campaign_sync.sample_data [--rows N] [--seed S] [--table T] DB_PATH``."""
    parser = argparse.ArgumentParser(
        description="Generate a deterministic fake Merged Customers table into a DuckDB file."
    )
    parser.add_argument("db_path", help="DuckDB file to create or replace")
    parser.add_argument("--rows", type=int, default=100_000, help="number of customers")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    parser.add_argument("--table", default="merged_customers", help="table name")
    args = parser.parse_args(argv)
    try:
        written = generate_merged_customers(
            args.db_path, args.rows, seed=args.seed, table=args.table
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {written} rows to {args.db_path} (table {args.table})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
