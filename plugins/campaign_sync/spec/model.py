"""The campaign file format, as pydantic models. Unknown keys are refused everywhere.

Structural rules live here; rules that cross sections (destination references, destination
contracts, option models) live in ``campaign_sync.spec.checks``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from campaign_sync.spec.echo import short

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
QUALIFIED_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$"
PRESETS = {
    "@once": None,
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
MAX_SUB_AUDIENCES = 60

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
MAX_RETRY_DELAY_SECONDS = 7 * 24 * 3600
_UNSAFE_LABEL = re.compile(r"[\x00-\x1f\x7f/\\]")
FIRST_YEAR, LAST_YEAR = 1970, 9998  # datetimes outside convert to UTC badly or not at all


def _label(value: str) -> str:
    # Names become task ids and staging-path segments (through slugs); refuse what never could.
    if _UNSAFE_LABEL.search(value):
        raise ValueError("must not contain '/', '\\' or control characters")
    if not re.search(r"[A-Za-z0-9]", value):
        raise ValueError("must contain a letter or digit")
    if value.startswith((".", "_")):
        raise ValueError("must not start with '.' or '_'")
    return value


Label = Annotated[Name, AfterValidator(_label)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


@cache
def _known_timezones() -> frozenset[str]:
    from zoneinfo import available_timezones

    return frozenset(available_timezones())


def _sql_expression(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must be a non-empty SQL boolean expression")
    if ";" in value:
        raise ValueError("must be a single SQL expression (no ';')")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    """When the campaign runs: a cron expression or preset, a start, and an optional end."""

    cron: str | None = Field(
        default=None,
        description="Cron expression or preset (@once, @hourly, @daily, @weekly, @monthly, "
        "@quarterly, @yearly). Omit for manually triggered runs only.",
    )
    start_date: date | datetime
    end_date: date | datetime | None = None
    max_runs: int | None = Field(default=None, ge=1, le=1_000)
    catchup: bool = False
    timezone: str = "UTC"
    # --- data-aware schedules ---
    assets: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Airflow Asset URIs (or names) whose updates start a run, instead of or "
        "beside cron.",
    )
    assets_mode: Literal["any", "all"] = Field(
        default="any", description="Run when any asset is updated, or only once all are."
    )

    @field_validator("assets")
    @classmethod
    def _valid_assets(cls, value: list[str]) -> list[str]:
        for i, uri in enumerate(value):
            problem = asset_problem(uri)
            if problem:
                raise ValueError(f"assets[{i}] {short(uri)}: {problem}")
        if len(set(value)) != len(value):
            raise ValueError("an asset is listed twice")
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None or value in PRESETS:
            return value
        if value.startswith("@"):
            raise ValueError(f"unknown preset {short(value)}; use one of {', '.join(PRESETS)}")
        from croniter import croniter  # already loaded by Airflow; kept local for the CLI

        if not croniter.is_valid(value):
            raise ValueError(f"{short(value)} is not a valid cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        # Looked up in the list, never opened by name: "America" is a folder, and a long
        # name is an OSError, not a ZoneInfoNotFoundError.
        if value not in _known_timezones():
            raise ValueError(
                f"unknown timezone {short(value)}; use an IANA name such as America/New_York"
            )
        return value

    @field_validator("start_date", "end_date")
    @classmethod
    def _in_range(cls, value: date | datetime | None) -> date | datetime | None:
        if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(f"year must be between {FIRST_YEAR} and {LAST_YEAR}")
        return value

    @model_validator(mode="after")
    def _consistent_end(self) -> Schedule:
        if self.end_date is not None and self.max_runs is not None:
            raise ValueError("give end_date or max_runs, not both")
        if self.max_runs is not None and self.cron in (None, "@once"):
            raise ValueError("max_runs needs a recurring cron schedule")
        if self.assets and self.cron == "@once":
            raise ValueError("assets go with a recurring cron or none, not @once")
        if self.end_date is not None and self.aware(self.end_date) < self.aware(self.start_date):
            raise ValueError("end_date is before start_date")
        if self.cron_expression is not None:
            # A cron that never fires fails here, at load, not in Airflow.
            self._fire_time(self.max_runs or 1)
        return self

    @property
    def cron_expression(self) -> str | None:
        """The cron expression to run on (presets expanded); None for manual or @once."""
        return PRESETS.get(self.cron, self.cron) if self.cron is not None else None

    def last_run(self) -> datetime | None:
        """The last logical date: ``end_date``, or the ``max_runs``-th fire time at or after
        the start. Raises ValueError for a cron that never fires after the start."""
        if self.max_runs is None or self.cron_expression is None:
            # No cron walk: DAG parsing asks for this once per campaign.
            return self.aware(self.end_date) if self.end_date is not None else None
        return self._fire_time(self.max_runs)

    def _fire_time(self, number: int) -> datetime:
        """The ``number``-th fire time at or after the start."""
        from croniter import CroniterBadDateError, croniter

        cron = self.cron_expression
        assert cron is not None
        try:
            it = croniter(cron, self.aware(self.start_date) - timedelta(seconds=1))
            fire = it.get_next(datetime)
            for _ in range(number - 1):
                fire = it.get_next(datetime)
        except (CroniterBadDateError, OverflowError, ValueError) as exc:
            raise ValueError(f"cron {short(self.cron)} never fires after start_date") from exc
        return fire

    def aware(self, value: date | datetime) -> datetime:
        """A schedule date as an aware datetime; naive values are in the schedule's timezone."""
        from zoneinfo import ZoneInfo

        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        aware = value if value.tzinfo else value.replace(tzinfo=ZoneInfo(self.timezone))
        return aware.astimezone(UTC).astimezone(aware.tzinfo)  # normalizes folds and gaps


def asset_problem(uri: str) -> str | None:
    """Why Airflow's ``Asset`` refuses ``uri``, or None when it takes it."""
    import warnings

    if not isinstance(uri, str) or not uri.strip():
        return "must be a non-empty URI or name"
    from airflow.sdk import Asset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. a password in the URI
            Asset(uri=uri)
    except (ValueError, TypeError, UserWarning) as exc:
        return str(exc).split("\n")[0][:200] or type(exc).__name__
    return None


class Retries(_Strict):
    """Task retries; the delay doubles on each attempt up to max_delay_seconds."""

    count: int = Field(default=2, ge=0, le=20)
    delay_seconds: int = Field(default=60, ge=0, le=MAX_RETRY_DELAY_SECONDS)
    max_delay_seconds: int = Field(default=1800, ge=0, le=MAX_RETRY_DELAY_SECONDS)
    exponential_backoff: bool = True


class Source(_Strict):
    """Where the audience comes from: SQL, or a table with include/exclude conditions."""

    conn_id: Name = Field(description="Airflow connection id of the source database.")
    customer_id: Identifier = Field(default="customer_id", description="Customer id column.")
    sql: str | None = Field(default=None, description="SELECT returning the audience.")
    table: Annotated[str, StringConstraints(pattern=QUALIFIED_IDENTIFIER)] | None = None
    include: list[str] = Field(
        default_factory=list, description="Conditions a customer must all match (table only)."
    )
    exclude: list[str] = Field(
        default_factory=list, description="Conditions any of which removes a customer."
    )
    phone_country_code: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,2}$")] = Field(
        default="1",
        description="Calling code assumed for phone numbers written without one (1 = US/Canada).",
    )

    @field_validator("include", "exclude")
    @classmethod
    def _conditions(cls, value: list[str]) -> list[str]:
        return [_sql_expression(v) for v in value]

    @field_validator("sql")
    @classmethod
    def _single_statement(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip(";").strip()
        if not value or ";" in value:
            raise ValueError("must be one SELECT statement")
        return value

    @model_validator(mode="after")
    def _one_audience(self) -> Source:
        if (self.sql is None) == (self.table is None):
            raise ValueError("give exactly one of sql or table")
        if self.sql is not None and (self.include or self.exclude):
            raise ValueError("include/exclude apply to table; put conditions in the sql instead")
        return self


Percentage = Annotated[Decimal, Field(gt=0, le=100, decimal_places=2)]


class TreatmentGroup(_Strict):
    """A share of a sub-audience; a control group is recorded but sent nowhere."""

    name: Label
    percentage: Percentage
    control: bool = False
    destinations: list[Label] = Field(default_factory=list)

    @model_validator(mode="after")
    def _control_sends_nothing(self) -> TreatmentGroup:
        if self.control and self.destinations:
            raise ValueError("a control group receives nothing: remove its destinations")
        if len(set(self.destinations)) != len(self.destinations):
            raise ValueError("a destination is listed twice")
        return self


def _check_groups(groups: list[TreatmentGroup]) -> list[TreatmentGroup]:
    total = sum((g.percentage for g in groups), Decimal(0))
    if total != 100:
        raise ValueError(f"treatment group percentages sum to {total}, not 100")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError("treatment group names must be unique within a sub-audience")
    return groups


Groups = Annotated[list[TreatmentGroup], Field(min_length=1)]


class SubAudience(_Strict):
    """A named slice of the audience, selected by a SQL condition."""

    name: Label
    condition: str
    treatment_groups: Groups

    _groups = field_validator("treatment_groups")(_check_groups)
    _condition = field_validator("condition")(_sql_expression)


class Remaining(_Strict):
    """The optional sub-audience for customers who match no other sub-audience."""

    name: Label = "all remaining"
    treatment_groups: Groups

    _groups = field_validator("treatment_groups")(_check_groups)


class Assignment(_Strict):
    """How customers are placed in sub-audiences and treatment groups."""

    first_match_only: bool = Field(
        default=True,
        description="True: a customer joins only the first sub-audience matched, in order. "
        "False: every sub-audience matched.",
    )
    salt: str | None = Field(
        default=None,
        description="Hash salt for treatment groups; defaults to the campaign name. Changing it "
        "reshuffles every customer.",
    )


class Destination(_Strict):
    """A named destination of the campaign and the attributes it receives."""

    type: str
    conn_id: Name | None = Field(default=None, description="Airflow connection id.")
    dry_run: bool = Field(
        default=False,
        description="Write the exact payload to the output folder instead of sending it.",
    )
    attributes: dict[Identifier, Annotated[str, StringConstraints(min_length=1)]] = Field(
        description="Source column -> destination attribute name; applies to every group "
        "that uses this destination."
    )
    options: dict[str, Any] = Field(default_factory=dict)
    # --- shared limits (campaign_sync.pools) ---
    pool: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,256}$")] | None = Field(
        default=None,
        description="Airflow pool of this destination's exports (platforms only); default "
        "campaign_sync__<conn_id>, shared by every campaign on the connection.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=128,
        description="Requests that may be in flight at once on this account: the pool's "
        "slots. An export sending k batches at once takes k slots and k / slots of the "
        "account's rate. Default: the platform's declared concurrency.",
    )

    @field_validator("attributes")
    @classmethod
    def _distinct_targets(cls, value: dict[str, str]) -> dict[str, str]:
        targets = list(value.values())
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise ValueError(f"destination attribute(s) {', '.join(dupes)} mapped twice")
        reserved = sorted(t for t in targets if t.startswith("__"))
        if reserved:
            raise ValueError(f"attribute names starting with '__' are reserved: {reserved}")
        return value


# --- alerts: notifications and pre-export thresholds ------------------------------------------

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _email(value: str) -> str:
    if not re.match(EMAIL, value):
        raise ValueError(f"{short(value)} is not an email address (name@example.com)")
    return value


EmailAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)
]
DEFAULT_FAILURE_SUBJECT = "campaign-sync: {{ dag.dag_id }} FAILED (run {{ run_id }})"
DEFAULT_SUCCESS_SUBJECT = "campaign-sync: {{ dag.dag_id }} succeeded (run {{ run_id }})"


def _jinja_template(value: str) -> str:
    # A template Airflow cannot render would fail inside the callback, long after the run.
    from jinja2 import Environment, TemplateSyntaxError

    try:
        Environment().parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(f"not a valid Jinja template: {exc.message}") from exc
    return value


Subject = Annotated[
    str, StringConstraints(min_length=1, max_length=500), AfterValidator(_jinja_template)
]


class EmailAlerts(_Strict):
    """Emails on the run's failure and/or success, through Airflow's SMTP notifier."""

    smtp_conn_id: Name = Field(description="Airflow SMTP connection id (host, port, login).")
    to: list[EmailAddress] = Field(min_length=1, max_length=50, description="Recipients.")
    from_email: EmailAddress | None = Field(
        default=None, description="Sender; defaults to the SMTP connection's from_email."
    )
    on_failure: bool = True
    on_success: bool = False
    subject_on_failure: Subject = Field(
        default=DEFAULT_FAILURE_SUBJECT,
        description="Jinja template; the context has dag, run_id and reason.",
    )
    subject_on_success: Subject = DEFAULT_SUCCESS_SUBJECT


class RejectedShare(_Strict):
    """Alert when a destination sets aside more than ``max_percent`` of its group members."""

    max_percent: Annotated[Decimal, Field(ge=0, le=100)]
    action: Literal["warn", "fail"] = "warn"


class AudienceChange(_Strict):
    """Alert when the audience size moves by more than ``max_percent`` against the last
    successful run (e.g. 50: below half or above one and a half times)."""

    max_percent: Annotated[Decimal, Field(ge=0, le=10_000)]
    action: Literal["warn", "fail"] = "warn"


class Thresholds(_Strict):
    """Checked after projection and before any export; "fail" stops the run unsent."""

    rejected_share: RejectedShare | None = None
    audience_change: AudienceChange | None = None

    @property
    def configured(self) -> bool:
        """Whether any threshold is set."""
        return self.rejected_share is not None or self.audience_change is not None


class Alerts(_Strict):
    """Notifications on the run's outcome and thresholds checked before anything is sent."""

    email: EmailAlerts | None = None
    thresholds: Thresholds = Thresholds()


class Campaign(_Strict):
    """One campaign: audience, sub-audiences, treatment groups and destinations."""

    name: Name
    description: str = ""
    owner: str = "campaign-sync"
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    schedule: Schedule | None = None
    retries: Retries = Retries()
    source: Source
    assignment: Assignment = Assignment()
    sub_audiences: list[SubAudience] = Field(min_length=1, max_length=MAX_SUB_AUDIENCES)
    remaining: Remaining | None = None
    destinations: dict[Label, Destination] = Field(default_factory=dict)
    alerts: Alerts = Alerts()

    @field_validator("name")
    @classmethod
    def _has_id_chars(cls, value: str) -> str:
        if not re.search(r"[A-Za-z0-9]", value):
            raise ValueError("must contain a letter or digit")
        return value

    @property
    def hash_salt(self) -> str:
        """Salt for treatment-group hashing."""
        return self.assignment.salt or self.name
