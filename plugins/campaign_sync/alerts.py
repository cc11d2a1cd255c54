"""A campaign's alerts: SMTP notifications on the run's outcome, and the thresholds checked
after projection and before any export (rejected share per destination, audience size change
against the last successful run).

Evaluation is pure (counts in, findings out); ``CheckThresholdsOperator`` reads the counts and
acts on the findings. Findings carry counts and names only, never a customer's data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from campaign_sync.spec.model import Alerts, AudienceChange, RejectedShare

log = logging.getLogger(__name__)

FAILURE_BODY = (
    "<p>Campaign DAG <b>{{ dag.dag_id }}</b>, run <code>{{ run_id }}</code> failed.</p>"
    "<p>Reason: {{ reason }}</p>"
    "{% if ti is defined %}<p>Last task: {{ ti.task_id }} (try {{ ti.try_number }})</p>"
    "{% endif %}"
)
SUCCESS_BODY = (
    "<p>Campaign DAG <b>{{ dag.dag_id }}</b>, run <code>{{ run_id }}</code> succeeded.</p>"
    "<p>Counts: the write_manifest task's XCom and rendered fields in the Airflow UI.</p>"
)


def notification_callbacks(alerts: Alerts) -> dict[str, Any]:
    """DAG keyword arguments wiring the campaign's email alerts as DAG-level callbacks
    (nothing when the campaign has no email alerts)."""
    email = alerts.email
    if email is None:
        return {}

    def notifier(subject: str, body: str) -> Any:
        return _smtp_notifier_class()(
            smtp_conn_id=email.smtp_conn_id,
            to=list(email.to),
            from_email=email.from_email,
            subject=subject,
            html_content=body,
        )

    found: dict[str, Any] = {}
    if email.on_failure:
        found["on_failure_callback"] = notifier(email.subject_on_failure, FAILURE_BODY)
    if email.on_success:
        found["on_success_callback"] = notifier(email.subject_on_success, SUCCESS_BODY)
    return found


def _smtp_notifier_class() -> type:
    """Airflow's SmtpNotifier, rendering each call on a fresh copy (rendering replaces the
    templates in place) and with a plain sandboxed Jinja environment when the callback's DAG is
    a serialized one (``dag.test()`` passes one, which has no template environment)."""
    import copy

    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    class CampaignSmtpNotifier(SmtpNotifier):
        def get_template_env(self, dag: Any = None) -> Any:
            return super().get_template_env(dag if hasattr(dag, "get_template_env") else None)

        def __call__(self, *args: Any) -> None:
            SmtpNotifier.__call__(copy.copy(self), *args)

    return CampaignSmtpNotifier


@dataclass(frozen=True)
class Finding:
    """One threshold crossed: which check, its action, and a message with counts only."""

    check: str
    action: str
    message: str


def _percent(part: float, whole: float) -> Decimal:
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"))


def rejected_share_findings(
    groups: dict[str, dict[str, Any]], threshold: RejectedShare
) -> list[Finding]:
    """Destinations whose rejected rows, over every group sending to them, exceed the share
    allowed; ``groups`` are the project tasks' XCom summaries by group id."""
    totals: dict[str, list[int]] = {}
    for summary in groups.values():
        for name, dest in summary["destinations"].items():
            counts = totals.setdefault(name, [0, 0])
            counts[0] += dest["rejected"]
            counts[1] += summary["members"]
    findings = []
    for name, (rejected, members) in sorted(totals.items()):
        if members == 0:
            continue
        share = _percent(rejected, members)
        if share > threshold.max_percent:
            findings.append(
                Finding(
                    "rejected_share",
                    threshold.action,
                    f"destination {name!r}: {rejected} of {members} rows set aside ({share}%), "
                    f"above the {threshold.max_percent}% allowed",
                )
            )
    return findings


def audience_change_finding(
    current: int, previous: int | None, threshold: AudienceChange
) -> Finding | None:
    """A finding when the audience moved by more than allowed; None when within bounds or
    when there is no previous successful run to compare with."""
    if previous is None:
        return None
    if previous == 0:
        if current == 0:
            return None
        change = "from 0"
    else:
        moved = _percent(abs(current - previous), previous)
        if moved <= threshold.max_percent:
            return None
        change = f"{'+' if current >= previous else '-'}{moved}%"
    return Finding(
        "audience_change",
        threshold.action,
        f"audience size {current} against {previous} in the last successful run ({change}), "
        f"beyond the {threshold.max_percent}% allowed",
    )


def previous_audience_size(manifests: dict[str, str], current_run_folder: str) -> int | None:
    """Audience size of the newest successful run among ``manifests`` (path -> JSON text, as
    found in staging), leaving out the current run's own folder. None when there is none (a
    first run, or retention deleted the older manifests)."""
    from campaign_sync.manifest import run_time

    runs = []
    for path, text in manifests.items():
        if path.split("/")[0] == current_run_folder:
            continue
        try:
            manifest = json.loads(text)
            runs.append((run_time(manifest), int(manifest["audience_size"])))
        except (ValueError, KeyError, TypeError):
            log.warning("Skipping an unreadable manifest in staging: %s", path)
    if not runs:
        return None
    return max(runs, key=lambda run: run[0])[1]
