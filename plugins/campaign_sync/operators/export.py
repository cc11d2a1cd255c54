"""Export operators: deliver one group's projected rows to one destination."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign_sync import config
from campaign_sync.destinations.local import LocalOptions
from campaign_sync.destinations.templating import render
from campaign_sync.failures import ContractViolation, checked_options
from campaign_sync.layout import RunLayout
from campaign_sync.operators.base import CampaignTaskOperator, required
from campaign_sync.operators.links import OutputLink
from campaign_sync.params import from_context as run_params_from_context

if TYPE_CHECKING:
    from campaign_sync.plan import CampaignPlan

DRY_RUN_FOLDER = "dry_run"


class ExportOperator(CampaignTaskOperator):
    """Base for exports: finds the group's projected file for ``destination`` and delivers it.

    Subclasses implement ``deliver``. The return value (XCom) holds counts and locations only.
    """

    operator_extra_links = (OutputLink(),)

    group_id: str
    destination: str
    conn_id: str | None
    options: dict[str, Any]
    dry_run: bool

    if TYPE_CHECKING:  # the constructor as callers see it (CampaignTaskOperator.take_args)

        def __init__(
            self,
            *,
            plan: CampaignPlan,
            group_id: str,
            destination: str,
            conn_id: str | None = None,
            options: dict[str, Any] | None = None,
            dry_run: bool = False,
            **kwargs: Any,
        ) -> None: ...

    def take_args(self, kwargs: dict[str, Any]) -> None:
        """The export's group and destination, its connection, options and dry run flag."""
        super().take_args(kwargs)
        self._own(
            group_id=required(kwargs, "group_id"),
            destination=required(kwargs, "destination"),
            conn_id=kwargs.pop("conn_id", None),
            options=dict(kwargs.pop("options", None) or {}),
            dry_run=kwargs.pop("dry_run", False),
        )

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
        """Deliver the projected rows (or write them locally in a dry run); returns rows sent
        and where they went. Skipped when the run's ``destinations`` parameter leaves it out."""
        from airflow.sdk.exceptions import AirflowSkipException

        params = run_params_from_context(self.plan, context)
        if not params.selected(self.destination):
            raise AirflowSkipException(
                f"{self.who()}: not in this run's trigger parameter 'destinations' "
                f"{list(params.destinations)}; skipped"
            )
        projected = self.projected(context)
        path = Path(self.layout(context).projected(self.group_id, self.destination))
        dry_run = self.dry_run or params.dry_run
        with self.staging().read_dir(str(path.parent)) as folder:
            source = folder / path.name
            write = self.write_dry_run if dry_run else self.deliver
            result = write(source, context)
        if result["rows_sent"] != projected["rows"]:
            raise ContractViolation(
                f"campaign {self.plan.campaign.name!r}: destination {self.destination!r} in "
                f"{self.group_id!r} sent {result['rows_sent']} rows of {projected['rows']}"
                " projected; the exporter lost or added rows (a bug: report it with this log)"
            )
        if dry_run:
            why = "destination dry_run" if self.dry_run else "trigger parameter dry_run"
            self.log.info(
                "DRY RUN (%s): %s -> %s: %d rows written to %s; nothing was sent",
                why, self.group_id, self.destination, result["rows_sent"], result["location"],
            )  # fmt: skip
        else:
            self.log.info(
                "%s -> %s: %d rows delivered", self.group_id, self.destination, result["rows_sent"]
            )
        self.announce(context, result)
        return {"destination": self.destination, "group_id": self.group_id, **result}

    def announce(self, context: Any, result: dict[str, Any]) -> None:
        """Describe the delivery on this task's outlet asset event (counts only): followers see
        whether it was a dry run."""
        for asset in self.outlets:
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                context["outlet_events"][asset].extra = {
                    "campaign": self.plan.campaign.name,
                    "group_id": self.group_id,
                    "destination": self.destination,
                    "rows_sent": result["rows_sent"],
                    "dry_run": bool(result.get("dry_run")),
                    "run_id": context["run_id"],
                }

    def write_dry_run(self, source: Path, context: Any) -> dict[str, Any]:
        """Write the exact payload as a CSV under the output root's ``dry_run/`` folder."""
        return self.write_local(source, context, LocalOptions(path=DRY_RUN_FOLDER), dry_run=True)

    def write_local(
        self, source: Path, context: Any, opts: LocalOptions, *, dry_run: bool
    ) -> dict[str, Any]:
        """Write ``source`` as a local file, as ``opts`` say, under its final name atomically."""
        from campaign_sync.writers import write_file  # pyarrow: not at parse time

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
        return {"rows_sent": rows, "location": str(target), "dry_run": dry_run}

    @abstractmethod
    def deliver(self, source: Path, context: Any) -> dict[str, Any]:
        """Send the rows in ``source``; return at least ``rows_sent``."""


class LocalExportOperator(ExportOperator):
    """Write the rows as a CSV or Parquet file in a local folder (the ``local`` destination)."""

    def deliver(self, source: Path, context: Any) -> dict[str, Any]:
        """Write the file under its final name atomically."""
        opts = checked_options(LocalOptions, self.options, self.who())
        return self.write_local(source, context, opts, dry_run=False)


class DryRunExportOperator(ExportOperator):
    """A destination with ``dry_run: true``: its exact payload is written under the output
    root's ``dry_run/`` folder and nothing leaves the machine. Shown as "<task> (dry run)"."""

    ui_color = "#fff4c2"

    def take_args(self, kwargs: dict[str, Any]) -> None:
        """Always a dry run, shown as "<task> (dry run)" unless given another display name."""
        kwargs.setdefault("task_display_name", f"{kwargs['task_id']} (dry run)")
        kwargs["dry_run"] = True
        super().take_args(kwargs)

    def deliver(self, source: Path, context: Any) -> dict[str, Any]:
        """Never sends: the same local write as every dry run."""
        return self.write_dry_run(source, context)
