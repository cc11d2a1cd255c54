"""Load campaign files: YAML to validated ``Campaign`` objects, or errors naming file, campaign
and field. One bad file never hides the others."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from campaign_sync.spec.checks import Problem, check_campaign, problems_from_validation
from campaign_sync.spec.ids import dag_id_for
from campaign_sync.spec.model import Campaign

SUFFIXES = (".yaml", ".yml")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster when present
_NAME_LINE = re.compile(
    r"^name:[ \t]*['\"]?([A-Za-z0-9][^'\"#\n]*?)['\"]?[ \t]*(#.*)?$", re.MULTILINE
)


class CampaignError(Exception):
    """A campaign file that cannot be used, with every problem found in it."""

    def __init__(self, path: Path, campaign: str | None, problems: list[Problem]) -> None:
        self.path = path
        self.campaign = campaign
        self.problems = problems
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line per problem: ``file: campaign 'name': field: message``."""
        who = f"campaign {self.campaign!r}" if self.campaign else "campaign (name unreadable)"
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
    """Load and fully validate one campaign file, raising ``CampaignError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError(path, None, [Problem("", f"cannot read file: {exc}")]) from exc
    try:
        data: Any = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())  # one line per problem, whatever PyYAML says
        raise CampaignError(
            path, _guess_name(text), [Problem("", f"YAML error: {message}")]
        ) from exc
    if not isinstance(data, dict):
        raise CampaignError(
            path, None, [Problem("", "a campaign file must be a YAML mapping (key: value)")]
        )
    name = data.get("name") if isinstance(data.get("name"), str) else None
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise CampaignError(path, name, problems_from_validation(exc)) from exc
    problems = check_campaign(campaign)
    if problems:
        raise CampaignError(path, campaign.name, problems)
    return campaign


def _guess_name(text: str) -> str | None:
    # A file with a YAML error keeps its DAG id when its name line is still readable.
    match = _NAME_LINE.search(text)
    return match.group(1).strip() if match else None


def load_folder(folder: Path) -> LoadResult:
    """Load every campaign file in ``folder``; duplicate DAG ids are errors for later files."""
    result = LoadResult()
    owners: dict[str, Path] = {}
    for path in campaign_files(folder):
        try:
            campaign = load_file(path)
        except CampaignError as exc:
            result.errors.append(exc)
            continue
        loaded = LoadedCampaign(path, campaign)
        if loaded.dag_id in owners:
            result.errors.append(
                CampaignError(
                    path,
                    campaign.name,
                    [
                        Problem(
                            "name",
                            f"duplicate campaign: DAG id {loaded.dag_id!r} is already used by "
                            f"{owners[loaded.dag_id]}",
                        )
                    ],
                )
            )
            continue
        owners[loaded.dag_id] = path
        result.campaigns.append(loaded)
    return result
