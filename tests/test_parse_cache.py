"""The DAG factory's parse cache (validated campaigns keyed by file content and code) and its
sharded DAG files: faster parses that never give a different result."""

from __future__ import annotations

from pathlib import Path

import pytest
from campaign_sync.factory import build_dags, in_shard, shard_from_file
from campaign_sync.spec import loader
from campaign_sync.spec.loader import ParseCache, load_folder
from helpers import sample_doc, write_campaign


def _folder(campaigns_dir: Path) -> Path:
    for i in range(6):
        doc = sample_doc()
        doc["name"] = f"campaign_{i}"
        write_campaign(campaigns_dir, f"c{i}", doc)
    bad = sample_doc()
    bad["name"] = "broken_one"
    bad["sub_audiences"][0]["treatment_groups"][1]["percentage"] = 80
    write_campaign(campaigns_dir, "broken", bad)
    write_campaign(campaigns_dir, "garbled", "name: [unclosed\n  sub_audiences: {")
    return campaigns_dir


def _summary(result: loader.LoadResult) -> tuple[list, list]:
    return (
        [(c.path, c.campaign.model_dump()) for c in result.campaigns],
        [(e.path, e.describe()) for e in result.errors],
    )


def test_cached_load_equals_full_load_and_skips_validation(
    campaigns_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = _folder(campaigns_dir)
    cache = ParseCache(tmp_path / "cache")
    full = _summary(load_folder(folder))
    assert _summary(load_folder(folder, cache)) == full  # cold: fills the cache
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 6  # valid campaigns only

    validated: list[Path] = []
    real = loader.load_bytes

    def counting(path: Path, raw: bytes):
        validated.append(path)
        return real(path, raw)

    monkeypatch.setattr(loader, "load_bytes", counting)
    assert _summary(load_folder(folder, cache)) == full  # warm
    # Only the two invalid files are validated again (their errors stay current).
    assert sorted(p.name for p in validated) == ["broken.yaml", "garbled.yaml"]


def test_changed_file_is_validated_again(campaigns_dir: Path, tmp_path: Path):
    folder = _folder(campaigns_dir)
    cache = ParseCache(tmp_path / "cache")
    load_folder(folder, cache)
    doc = sample_doc()
    doc["name"] = "campaign_0"
    doc["sub_audiences"][0]["treatment_groups"][1]["percentage"] = 80
    write_campaign(folder, "c0", doc)
    result = load_folder(folder, cache)
    assert "campaign_0" not in {c.campaign.name for c in result.campaigns}
    assert any(e.campaign == "campaign_0" and "sum to 90" in e.describe() for e in result.errors)


def test_code_change_and_broken_entries_fall_back_to_validation(
    campaigns_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = _folder(campaigns_dir)
    cache = ParseCache(tmp_path / "cache")
    full = _summary(load_folder(folder))
    load_folder(folder, cache)
    for entry in (tmp_path / "cache").glob("*.pickle"):
        entry.write_bytes(b"not a pickle")
    assert _summary(load_folder(folder, cache)) == full
    monkeypatch.setattr(loader, "code_version", lambda: "another version")
    keys = {cache.key(p, p.read_bytes()) for p in folder.glob("*.yaml")}
    assert not keys & {e.stem for e in (tmp_path / "cache").glob("*.pickle")}


def test_unwritable_cache_only_costs_speed(campaigns_dir: Path, tmp_path: Path):
    folder = _folder(campaigns_dir)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    assert _summary(load_folder(folder, ParseCache(blocker / "cache"))) == _summary(
        load_folder(folder)
    )


def test_shards_together_equal_the_full_parse(campaigns_dir: Path, tmp_path: Path):
    folder = _folder(campaigns_dir)
    cache = ParseCache(tmp_path / "cache")
    full = build_dags(folder)
    parts = [build_dags(folder, cache=cache, shard=(i, 3)) for i in range(3)]
    ids = [set(p) for p in parts]
    assert set().union(*ids) == set(full)
    assert sum(len(s) for s in ids) == len(full)  # each DAG in exactly one shard
    for part in parts:
        for dag_id, dag in part.items():
            assert set(dag.task_dict) == set(full[dag_id].task_dict)
            assert dag.tags == full[dag_id].tags


@pytest.mark.parametrize(
    ("name", "shard"),
    [
        ("/dags/campaign_sync_dags.py", None),
        ("/dags/campaign_sync_dags_shard_0_of_4.py", (0, 4)),
        ("/dags/campaign_sync_dags_shard_3_of_4.py", (3, 4)),
    ],
)
def test_shard_from_file(name: str, shard: tuple[int, int] | None):
    assert shard_from_file(name) == shard


def test_shard_index_out_of_range_is_refused():
    with pytest.raises(ValueError, match="shard index"):
        shard_from_file("campaign_sync_dags_shard_4_of_4.py")


def test_in_shard_is_stable_and_total():
    ids = [f"campaign_{i}" for i in range(200)]
    owners = [[i for i in range(4) if in_shard(d, (i, 4))] for d in ids]
    assert all(len(o) == 1 for o in owners)
    assert owners == [[i for i in range(4) if in_shard(d, (i, 4))] for d in ids]
