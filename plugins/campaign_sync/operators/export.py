"""Export operators: deliver one group's projected rows to one destination."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

from campaign_sync import config
from campaign_sync.destinations.local import LocalOptions
from campaign_sync.destinations.templating import render
from campaign_sync.failures import ContractViolation, checked_options
from campaign_sync.layout import RunLayout
from campaign_sync.operators.base import CampaignTaskOperator
from campaign_sync.operators.links import OutputLink

DRY_RUN_FOLDER = "dry_run"


class ExportOperator(CampaignTaskOperator):
    """Base for exports: finds the group's projected file for ``destination`` and delivers it.

    Subclasses implement ``deliver``. The return value (XCom) holds counts and locations only.
    """

    operator_extra_links = (OutputLink(),)

    def __init__(
        self,
        *,
        group_id: str,
        destination: str,
        conn_id: str | None = None,
        options: dict[str, Any] | None = None,
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.group_id = group_id
        self.destination = destination
        self.conn_id = conn_id
        self.options = dict(options or {})
        self.dry_run = dry_run

    def projected(self, context: Any) -> dict[str, Any]:
        """This destination's entry in the group's projection output."""
        output = context["ti"].xcom_pull(task_ids=RunLayout.project_task_id(self.group_id))
        if not output or self.destination not in output["destinations"]:
            raise ContractViolation(
                f"campaign {self.plan.campaign.name!r}: no projected rows for destination "
                f"{self.destination!r} in group {self.group_id!r}; rerun the group's project task"
            )
        return output["destinations"][self.destination]

    def who(self) -> str:
        """The campaign and destination this task delivers, for messages."""
        return f"campaign {self.plan.campaign.name!r}, destination {self.destination!r}"

    def template_values(self, context: Any, ext: str) -> dict[str, str | int]:
        """Values for output-name templates."""
        group = self.plan.group(self.group_id)
        logical = context.get("logical_date") or context["dag_run"].run_after
        return {
            "campaign": self.plan.campaign.name,
            "dag_id": self.plan.dag_id,
            "run_id": context["run_id"],
            "run_date": logical.strftime("%Y-%m-%d"),
            "sub_audience": group.sub_audience,
            "treatment_group": group.treatment_group,
            "destination": self.destination,
            "file_number": 1,
            "ext": ext,
        }

    def execute(self, context: Any) -> dict[str, Any]:
        """Deliver the projected rows; returns rows sent and where they went."""
        projected = self.projected(context)
        path = Path(self.layout(context).projected(self.group_id, self.destination))
        with self.staging().read_dir(str(path.parent)) as folder:
            result = self.deliver(folder / path.name, context)
        if result["rows_sent"] != projected["rows"]:
            raise ContractViolation(
                f"campaign {self.plan.campaign.name!r}: destination {self.destination!r} in "
                f"{self.group_id!r} sent {result['rows_sent']} rows of {projected['rows']}"
                " projected; the exporter lost or added rows (a bug: report it with this log)"
            )
        self.log.info(
            "%s -> %s: %d rows delivered", self.group_id, self.destination, result["rows_sent"]
        )
        return {"destination": self.destination, "group_id": self.group_id, **result}

    @abstractmethod
    def deliver(self, source: Path, context: Any) -> dict[str, Any]:
        """Send the rows in ``source``; return at least ``rows_sent``."""


class LocalExportOperator(ExportOperator):
    """Write the rows as a CSV or Parquet file in a local folder (the ``local`` destination).

    With ``dry_run`` the payload a platform would receive is written under the output root's
    ``dry_run/`` folder instead, and nothing leaves the machine.
    """

    def deliver(self, source: Path, context: Any) -> dict[str, Any]:
        """Write the file under its final name atomically."""
        from campaign_sync.writers import write_file  # pyarrow: not at parse time

        opts = (
            LocalOptions(path=DRY_RUN_FOLDER)
            if self.dry_run
            else checked_options(LocalOptions, self.options, self.who())
        )
        folder = Path(opts.path)
        if not folder.is_absolute():
            folder = config.output_root() / folder
        name = render(opts.file_template, self.template_values(context, opts.format))
        target = folder / name
        rows = write_file(
            source,
            target,
            fmt=opts.format,
            header=opts.header,
            delimiter=opts.delimiter,
            batch_rows=config.batch_rows(),
        )
        return {"rows_sent": rows, "location": str(target), "dry_run": self.dry_run}
