"""Load campaign files: YAML to validated ``Campaign`` objects, or errors naming file, campaign
and field. One bad file never hides the others."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from functools import cache
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


def read_file(path: Path) -> bytes:
    """A campaign file's bytes, or ``CampaignError`` when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CampaignError(path, None, [Problem("", f"cannot read file: {exc.strerror}")]) from exc


def load_file(path: Path) -> Campaign:
    """Load and fully validate one campaign file, raising ``CampaignError`` and nothing else."""
    return load_bytes(path, read_file(path))


def load_bytes(path: Path, raw: bytes) -> Campaign:
    """Fully validate the bytes of campaign file ``path``, raising ``CampaignError`` only."""
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


@cache
def code_version() -> str:
    """Digest of the campaign_sync sources and pydantic's version: validation's inputs besides
    the file, so a cached result never outlives the code that produced it."""
    import pydantic

    digest = hashlib.sha256(pydantic.VERSION.encode())
    package = Path(__file__).resolve().parent.parent
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


class ParseCache:
    """Validated campaigns on disk, keyed by the file's path and bytes and the code version.

    The DAG processor parses the folder again in a fresh process every few seconds; with the
    cache, an unchanged file costs a read and an unpickle instead of YAML parsing and
    validation. Only valid campaigns are kept (an invalid file is validated again, so its
    errors are always current). Any cache failure falls back to validating the file: the cache
    can make a parse faster, never different. The folder must be writable only by the Airflow
    user (it holds pickles).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key(self, path: Path, raw: bytes) -> str:
        """The entry name for ``path`` holding ``raw``."""
        digest = hashlib.sha256(code_version().encode())
        digest.update(str(path).encode() + b"\0" + raw)
        return digest.hexdigest()

    def get(self, key: str) -> Campaign | None:
        """The cached campaign, or None."""
        try:
            with open(self.folder / f"{key}.pickle", "rb") as f:
                value = pickle.load(f)  # our own folder: see the class docstring
        except Exception:  # missing, partial or from an incompatible version: validate again
            return None
        return value if isinstance(value, Campaign) else None

    def put(self, key: str, campaign: Campaign) -> None:
        """Keep ``campaign`` under ``key`` (atomically; failures are ignored)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp_")
            with os.fdopen(fd, "wb") as f:
                pickle.dump(campaign, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.folder / f"{key}.pickle")
        except Exception:  # a read-only or full disk only costs speed
            return


def _load_cached(path: Path, cache: ParseCache | None) -> Campaign:
    raw = read_file(path)
    if cache is None:
        return load_bytes(path, raw)
    key = cache.key(path, raw)
    campaign = cache.get(key)
    if campaign is None:
        campaign = load_bytes(path, raw)
        cache.put(key, campaign)
    return campaign


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


def load_folder(folder: Path, cache: ParseCache | None = None) -> LoadResult:
    """Load every campaign file in ``folder``, through ``cache`` when given.

    Files whose campaigns share a DAG id are all refused, each naming the others: which file
    would win must never depend on the order of file names.
    """
    result = LoadResult()
    by_dag_id: dict[str, list[LoadedCampaign]] = {}
    for path in campaign_files(folder):
        try:
            campaign = _load_cached(path, cache)
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
