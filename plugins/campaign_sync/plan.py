"""The run plan of a campaign: its sub-audiences, treatment groups, bucket ranges and
destinations, in the order the DAG and the tasks use them. Built once per parse."""

from __future__ import annotations

from dataclasses import dataclass

from campaign_sync.spec.ids import dag_id_for, group_id_for
from campaign_sync.spec.model import Campaign, TreatmentGroup

BUCKETS = 10_000  # percentages carry two decimals, so one bucket is 0.01%


@dataclass(frozen=True)
class GroupPlan:
    """One (sub-audience, treatment group): a task group in the DAG."""

    sub_audience: str
    treatment_group: str
    group_id: str
    is_control: bool
    bucket_start: int  # inclusive
    bucket_end: int  # exclusive
    destinations: tuple[str, ...]


@dataclass(frozen=True)
class CampaignPlan:
    """Everything the DAG and its tasks need to know about a campaign's structure."""

    campaign: Campaign
    dag_id: str
    sub_audiences: tuple[str, ...]  # in match order; the remaining one last if present
    groups: tuple[GroupPlan, ...]

    @property
    def remaining(self) -> str | None:
        """Name of the all-remaining sub-audience, if the campaign has one."""
        return self.campaign.remaining.name if self.campaign.remaining else None

    def groups_of(self, sub_audience: str) -> tuple[GroupPlan, ...]:
        """Treatment groups of one sub-audience, in bucket order."""
        return tuple(g for g in self.groups if g.sub_audience == sub_audience)

    def group(self, group_id: str) -> GroupPlan:
        """The group with this task-group id."""
        for g in self.groups:
            if g.group_id == group_id:
                return g
        raise KeyError(f"campaign {self.campaign.name!r} has no group {group_id!r}")

    def used_source_columns(self) -> list[str]:
        """Source columns any destination of any group maps, in first-seen order."""
        used_destinations = {d for g in self.groups for d in g.destinations}
        columns: dict[str, None] = {}
        for name, dest in self.campaign.destinations.items():
            if name in used_destinations:
                columns.update(dict.fromkeys(dest.attributes))
        columns.pop(self.campaign.source.customer_id, None)
        return list(columns)


def _bucket_ranges(groups: list[TreatmentGroup]) -> list[tuple[int, int]]:
    ranges, start = [], 0
    for group in groups:
        end = start + int(group.percentage * 100)
        ranges.append((start, end))
        start = end
    return ranges


def build_plan(campaign: Campaign) -> CampaignPlan:
    """Lay out a validated campaign's groups with contiguous bucket ranges per sub-audience."""
    subs = [(s.name, list(s.treatment_groups)) for s in campaign.sub_audiences]
    if campaign.remaining is not None:
        subs.append((campaign.remaining.name, list(campaign.remaining.treatment_groups)))
    groups = []
    for sub_name, treatment_groups in subs:
        for group, (start, end) in zip(
            treatment_groups, _bucket_ranges(treatment_groups), strict=True
        ):
            groups.append(
                GroupPlan(
                    sub_audience=sub_name,
                    treatment_group=group.name,
                    group_id=group_id_for(sub_name, group.name),
                    is_control=group.control,
                    bucket_start=start,
                    bucket_end=end,
                    destinations=tuple(group.destinations),
                )
            )
    return CampaignPlan(
        campaign=campaign,
        dag_id=dag_id_for(campaign.name),
        sub_audiences=tuple(name for name, _ in subs),
        groups=tuple(groups),
    )
