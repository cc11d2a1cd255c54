"""The run layout (campaign_sync.layout): every staging path and task id, built from slugs."""

from __future__ import annotations

import posixpath

import pytest
from campaign_sync.layout import RunLayout

RUN_ID = "scheduled__2026-11-02T06:00:00+00:00"
HOSTILE = [
    "../escape",
    "../../../../etc/passwd",
    "..",
    ".",
    "/absolute/path",
    "a/../../b",
    "..\\..\\windows",
    "nul\x00byte",
    "~/home",
    "dest/../../..",
    "",
]


def test_every_path_of_a_run():
    layout = RunLayout("lifecycle_winback", "manual__1")
    assert layout.folder == "lifecycle_winback/manual__1"
    assert layout.audience == "lifecycle_winback/manual__1/audience"
    assert layout.audience_partition(6) == "lifecycle_winback/manual__1/audience/__g=6"
    assert (
        layout.group("active__treatment") == "lifecycle_winback/manual__1/groups/active__treatment"
    )
    assert layout.projected("active__treatment", "TikTok") == (
        "lifecycle_winback/manual__1/groups/active__treatment/destinations/tiktok.parquet"
    )
    assert layout.checkpoint("active__treatment", "klaviyo") == (
        "lifecycle_winback/manual__1/checkpoints/active__treatment/klaviyo"
    )
    assert layout.upload_record("active__treatment", "Winback S3") == (
        "lifecycle_winback/manual__1/uploads/active__treatment/winback_s3"
    )
    assert layout.manifest == "lifecycle_winback/manual__1/history/manifest.json"
    assert layout.recipients_history == "lifecycle_winback/manual__1/history/recipients.parquet"
    assert layout.delivery_log("active__treatment", "klaviyo") == (
        "lifecycle_winback/_delivery_log/active__treatment/klaviyo"
    )


def test_task_ids():
    assert RunLayout.BUILD_AUDIENCE == "build_audience"
    assert RunLayout.WRITE_MANIFEST == "write_manifest"
    assert RunLayout.export_task("Review Files") == "export_review_files"
    assert RunLayout.project_task_id("active__control") == "active__control.project"
    assert RunLayout.export_task_id("active__treatment", "TikTok") == (
        "active__treatment.export_tiktok"
    )


def _inside(path: str, folder: str) -> bool:
    return posixpath.normpath(path) == path and path.startswith(folder + "/")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_destination_and_group_names_never_leave_their_folder(name):
    layout = RunLayout("dag", RUN_ID)
    run_paths = [
        layout.projected("g", name),
        layout.projected(name, name),
        layout.group(name),
        layout.checkpoint(name, name),
        layout.upload_record(name, name),
    ]
    for path in run_paths:
        assert _inside(path, layout.folder), path
        assert ".." not in path.split("/") and "\\" not in path and "\x00" not in path
    log = layout.delivery_log(name, name)
    assert _inside(log, f"dag/{RunLayout.DELIVERY_LOG_FOLDER}"), log
    # One segment per name: a name never adds folders.
    assert layout.checkpoint(name, name).count("/") == layout.checkpoint("g", "d").count("/")
    assert RunLayout.export_task(name).startswith("export_")
    assert "." not in RunLayout.export_task(name)


@pytest.mark.parametrize("run_id", ["_delivery_log", "_", "..", "/", "_-x", "a/../_delivery_log"])
def test_no_run_folder_is_the_delivery_log(run_id):
    layout = RunLayout("dag", run_id)
    assert layout.folder.count("/") == 1
    assert layout.folder != f"dag/{RunLayout.DELIVERY_LOG_FOLDER}"
    assert ".." not in layout.folder.split("/")


def test_hostile_dag_id_stays_one_folder():
    layout = RunLayout("../../x", RUN_ID)
    assert layout.folder.count("/") == 1 and ".." not in layout.folder.split("/")
