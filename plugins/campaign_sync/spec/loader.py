"""Load campaign files: YAML to validated ``Campaign`` objects, or errors naming file, campaign
and field. One bad file never hides the others."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from campaign_sync.spec.checks import Problem, check_campaign, problems_from_validation
from campaign_sync.spec.echo import clip, short
from campaign_sync.spec.ids import dag_id_for
from campaign_sync.spec.model import Campaign
from campaign_sync.spec.yamlfile import YamlProblem, load_yaml

SUFFIXES = (".yaml", ".yml")


class CampaignError(Exception):
    """A campaign file that cannot be used, with every problem found in it."""

    def __init__(self, path: Path, campaign: str | None, problems: list[Problem]) -> None:
        self.path = path
        self.campaign = campaign
        self.problems = problems
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line per problem: ``file: campaign 'name': field: message``."""
        who = f"campaign {short(self.campaign)}" if self.campaign else "campaign (name unreadable)"
        return "\n".join(f"{self.path}: {who}: {p}" for p in self.problems)


@dataclass(frozen=True)
class LoadedCampaign:
    """A valid campaign and the file it came from."""

    path: Path
    campaign: Campaign

    @property
    def dag_id(self) -> str:
        """The Airflow DAG id for this campaign."""
        return dag_id_for(self.campaign.name)


@dataclass
class LoadResult:
    """Everything found in a campaigns folder: the good campaigns and the errors."""

    campaigns: list[LoadedCampaign] = field(default_factory=list)
    errors: list[CampaignError] = field(default_factory=list)


def campaign_files(folder: Path) -> list[Path]:
    """Campaign files under ``folder`` in a stable order (hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_file(path: Path) -> Campaign:
    """Load and fully validate one campaign file, raising ``CampaignError`` and nothing else."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CampaignError(path, None, [Problem("", f"cannot read file: {exc.strerror}")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CampaignError(
            path,
            None,
            [Problem("", f"cannot read file: not UTF-8 text (byte {exc.start}); save it as UTF-8")],
        ) from exc
    try:
        return _validate(path, text)
    except CampaignError:
        raise
    except Exception as exc:
        raise CampaignError(
            path, _guess_name(text), [Problem("", f"cannot be loaded: {_describe(exc)}")]
        ) from exc


def _validate(path: Path, text: str) -> Campaign:
    try:
        data: Any = load_yaml(text)
    except YamlProblem as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise CampaignError(
            path, _guess_name(text), [Problem("", f"YAML error: {where}{exc.message}")]
        ) from exc
    if not isinstance(data, dict):
        raise CampaignError(
            path, None, [Problem("", "a campaign file must be a YAML mapping (key: value)")]
        )
    name = data.get("name")
    name = name if isinstance(name, str) and len(name) <= 100 else None
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise CampaignError(path, name, problems_from_validation(exc)) from exc
    problems = check_campaign(campaign)
    if problems:
        raise CampaignError(path, campaign.name, problems)
    return campaign


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {clip(str(exc), 200)}"


def _guess_name(text: str) -> str | None:
    """The top-level ``name:`` of a file YAML cannot parse, so it keeps its DAG id.

    A plain scan of line starts: it stays linear however long the lines are.
    """
    for line in text.splitlines():
        if not line.startswith("name:"):
            continue
        value = line[5:].split(" #", 1)[0].strip().strip("'\"").strip()
        if value and value[0].isascii() and value[0].isalnum() and len(value) <= 100:
            return value
        return None
    return None


# A name line the line scan reads exactly as YAML would: a plain scalar, nothing YAML-special.
_PLAIN_NAME = re.compile(r"name: *([A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}?) *")


def load_for_dag(folder: Path, dag_id: str) -> LoadResult | None:
    """The one campaign whose DAG is ``dag_id``, without validating the other files, or None
    when only a full ``load_folder`` can tell (then the caller must do one).

    A worker parses the folder for each task; validating every file there costs as much as the
    dag-processor's full parse. Here every other file is only scanned for its top-level
    ``name:`` line. The answer equals ``load_folder``'s because the shortcut is taken only when
    every file's name line is a plain scalar (read the same by the scan as by YAML), exactly one
    file names ``dag_id`` and that file is valid: no other file can claim the id, and error DAGs
    never take a valid campaign's id.
    """
    match: Path | None = None
    for path in campaign_files(folder):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        names = [line for line in text.splitlines() if line.startswith("name:")]
        plain = _PLAIN_NAME.fullmatch(names[0]) if len(names) == 1 else None
        if plain is None:
            return None
        if dag_id_for(plain.group(1)) == dag_id:
            if match is not None:
                return None
            match = path
    if match is None:
        return None
    try:
        campaign = load_file(match)
    except CampaignError:
        return None
    if dag_id_for(campaign.name) != dag_id:
        return None
    return LoadResult(campaigns=[LoadedCampaign(match, campaign)])


def load_folder(folder: Path) -> LoadResult:
    """Load every campaign file in ``folder``.

    Files whose campaigns share a DAG id are all refused, each naming the others: which file
    would win must never depend on the order of file names.
    """
    result = LoadResult()
    by_dag_id: dict[str, list[LoadedCampaign]] = {}
    for path in campaign_files(folder):
        try:
            campaign = load_file(path)
        except CampaignError as exc:
            result.errors.append(exc)
            continue
        loaded = LoadedCampaign(path, campaign)
        by_dag_id.setdefault(loaded.dag_id, []).append(loaded)
    for dag_id, claimants in by_dag_id.items():
        if len(claimants) == 1:
            result.campaigns.append(claimants[0])
            continue
        for loaded in claimants:
            others = ", ".join(str(o.path) for o in claimants if o is not loaded)
            result.errors.append(
                CampaignError(
                    loaded.path,
                    loaded.campaign.name,
                    [
                        Problem(
                            "name",
                            f"DAG id {short(dag_id)} is also claimed by {others}; rename one "
                            "campaign (no file takes an id from another)",
                        )
                    ],
                )
            )
    result.campaigns.sort(key=lambda c: str(c.path))
    return result
