"""Where a run's files live in staging, and what a campaign DAG's tasks are called.

Every staging path and every task id is built here, and only from slugs, so a name from a
campaign file (a destination called ``../x``) can never reach a path outside its folder::

    <dag>/<run>/audience/__g=<i>/                        build_audience: assigned rows, by group
    <dag>/<run>/groups/<group>/destinations/<dest>.parquet   project: rows a destination takes
    <dag>/<run>/groups/<group>/rejected.parquet          project: rows set aside, with reasons
    <dag>/<run>/groups/<group>/recipients.parquet        project: the group's recipients
    <dag>/<run>/checkpoints/<group>/<dest>/              export: batches a platform acknowledged
    <dag>/<run>/uploads/<group>/<dest>/                  export: objects this run's file drop wrote
    <dag>/<run>/history/manifest.json, recipients.parquet    write_manifest
    <dag>/_delivery_log/<group>/<dest>/                  which runs last delivered (mirror baseline)

``<run>`` is a cleaned run id (``unique_segment``), which never starts with ``_`` unless it is
``_`` or ``_-<hash>``, so the per-DAG ``_delivery_log`` folder is never a run's folder.
"""

from __future__ import annotations

from campaign_sync.destinations.templating import unique_segment
from campaign_sync.spec.ids import slug


class RunLayout:
    """The staging paths of one DAG run (relative to the staging root), and the DAG's task ids."""

    # Task ids. Group tasks are addressed as "<group_id>.<task>" outside their task group.
    BUILD_AUDIENCE = "build_audience"
    PROJECT = "project"
    WRITE_MANIFEST = "write_manifest"
    CHECK_THRESHOLDS = "check_thresholds"

    # The staged audience is partitioned by this column (DuckDB names folders "__g=<i>").
    AUDIENCE_PARTITION = "__g"
    RECIPIENTS_FILE = "recipients.parquet"
    REJECTED_FILE = "rejected.parquet"
    MANIFEST_FILE = "manifest.json"
    DELIVERY_LOG_FOLDER = "_delivery_log"
    DELIVERY_LOG_FILE = "log.json"

    def __init__(self, dag_id: str, run_id: str) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.dag_root = self.dag_folder(dag_id)
        self.folder = f"{self.dag_root}/{self.run_folder(run_id)}"

    @classmethod
    def of_folder(cls, dag_root: str, run_folder: str) -> RunLayout:
        """The layout of a run folder found in staging (``<dag_root>/<run_folder>``), where
        only the cleaned names are known (``dag_id`` and ``run_id`` are those names)."""
        layout = cls.__new__(cls)
        layout.dag_id, layout.run_id = dag_root, run_folder
        layout.dag_root = dag_root
        layout.folder = f"{dag_root}/{run_folder}"
        return layout

    @staticmethod
    def run_folder(run_id: str) -> str:
        """The folder name of a run inside its DAG's folder."""
        return unique_segment(run_id)

    # --- task ids ----------------------------------------------------------------------------

    @staticmethod
    def export_task(destination: str) -> str:
        """Export task id of one destination inside its task group."""
        return f"export_{slug(destination)}"

    @classmethod
    def project_task_id(cls, group_id: str) -> str:
        """Full id of a group's project task."""
        return f"{group_id}.{cls.PROJECT}"

    @classmethod
    def export_task_id(cls, group_id: str, destination: str) -> str:
        """Full id of a group's export task to ``destination``."""
        return f"{group_id}.{cls.export_task(destination)}"

    # --- paths of the DAG --------------------------------------------------------------------

    @staticmethod
    def dag_folder(dag_id: str) -> str:
        """The folder holding every run of a DAG."""
        return unique_segment(dag_id)

    @classmethod
    def manifest_glob(cls) -> str:
        """Glob, relative to ``dag_folder``, matching every run's manifest."""
        return f"*/history/{cls.MANIFEST_FILE}"

    @classmethod
    def delivery_logs(cls, dag_root: str) -> str:
        """Folder of every delivery log of a DAG: ``<group>/<destination>/log.json`` inside."""
        return f"{dag_root}/{cls.DELIVERY_LOG_FOLDER}"

    def delivery_log(self, group_id: str, destination: str) -> str:
        """Folder recording which runs last delivered a group to a destination (kept across
        runs: a mirror sync diffs against the last one)."""
        return f"{self.delivery_logs(self.dag_root)}/{slug(group_id)}/{slug(destination)}"

    # --- paths of the run --------------------------------------------------------------------

    @property
    def audience(self) -> str:
        """The staged audience, a Parquet folder partitioned by group index."""
        return f"{self.folder}/audience"

    @classmethod
    def partition_name(cls, index: int) -> str:
        """Folder name of one group's rows inside the staged audience."""
        return f"{cls.AUDIENCE_PARTITION}={index}"

    def audience_partition(self, index: int) -> str:
        """The staged audience rows of the group at ``index`` in the plan."""
        return f"{self.audience}/{self.partition_name(index)}"

    def group(self, group_id: str) -> str:
        """A group's projection folder (projected rows, rejected rows, recipients)."""
        return f"{self.folder}/groups/{slug(group_id)}"

    @staticmethod
    def projected_name(destination: str) -> str:
        """Path of a destination's projected rows inside its group's folder."""
        return f"destinations/{slug(destination)}.parquet"

    def projected(self, group_id: str, destination: str) -> str:
        """A destination's projected rows for one group."""
        return f"{self.group(group_id)}/{self.projected_name(destination)}"

    def checkpoint(self, group_id: str, destination: str) -> str:
        """Folder of an export's checkpoint (batches a platform acknowledged)."""
        return f"{self.folder}/checkpoints/{slug(group_id)}/{slug(destination)}"

    def upload_record(self, group_id: str, destination: str) -> str:
        """Folder of the record of object names a file-drop export wrote in this run."""
        return f"{self.folder}/uploads/{slug(group_id)}/{slug(destination)}"

    @property
    def history(self) -> str:
        """Folder of the run's manifest and recipients history."""
        return f"{self.folder}/history"

    @property
    def manifest(self) -> str:
        """The run's manifest."""
        return f"{self.history}/{self.MANIFEST_FILE}"

    @property
    def recipients_history(self) -> str:
        """The run's recipients (one row per customer x group x destination)."""
        return f"{self.history}/{self.RECIPIENTS_FILE}"
