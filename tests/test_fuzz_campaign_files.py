"""Fuzzing campaign files with hypothesis: random mutations of the valid sample.

Every outcome must be a valid campaign (whose DAG builds) or a ``CampaignError`` naming the file
and, for a schema problem, the field. No other exception, ever, and the sample beside the fuzzed
file still loads.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from campaign_sync.factory import try_build_dag
from campaign_sync.spec.loader import CampaignError, LoadedCampaign, load_folder
from helpers import sample_doc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SAMPLE = sample_doc()
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples in CI and here; a failure is reproducible
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in the sample document."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(SAMPLE)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=90, max_size=400),
    st.sampled_from(
        ["", " ", "../..", "a/b", "\x00", "İstanbul", "🙂" * 30, "America", "9" * 400, "@once"]
    ),
    st.dates().map(str),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            key = path[-1]
            parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "delete", "extra", "deep", "type"]))
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "extra" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=20))] = draw(values)
        elif action == "deep":
            parent[key] = _deep(draw(st.integers(10, 300)))
        elif action == "type":
            old = parent[key]
            parent[key] = [old] if not isinstance(old, list) else {"x": old}
    return doc


YAML_TWISTS = [
    lambda text: text.replace("name: lifecycle_winback", "name: !!binary aGVsbG8="),
    lambda text: text.replace("owner:", "owner: !!python/name:os.system\nx_owner:"),
    lambda text: text.replace("tags:", "tags: !custom"),
    lambda text: text.replace("retries:", "retries: &r\n  count: 1\nx: *r\nretriez:"),
    lambda text: text.replace("source:", "source: !!set\n  ? a\nsourcez:"),
    lambda text: text.replace("destinations:", "destinations: *nowhere\ndestinationz:"),
    lambda text: text + "\n---\nname: second document\n",
    lambda text: text.replace("name:", "<<: {name: merged}\nname:", 1),
    lambda text: "\t" + text,
    lambda text: text[: len(text) // 2],
]


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10**9)


def _check(folder: Path, text: str) -> None:
    sample = folder / "sample.yaml"
    sample.write_text(_dump(SAMPLE))
    fuzzed = folder / "fuzzed.yaml"
    fuzzed.write_text(text, encoding="utf-8", errors="surrogatepass")

    result = load_folder(folder)

    by_path = {c.path: c for c in result.campaigns}
    errors = {e.path: e for e in result.errors}
    if fuzzed in by_path:
        built = try_build_dag(by_path[fuzzed])
        assert not isinstance(built, CampaignError), built.describe()
        collides = False
    else:
        error = errors[fuzzed]
        assert isinstance(error, CampaignError)
        for line in error.describe().splitlines():
            assert line.startswith(f"{fuzzed}: campaign ")
            assert len(line) < len(str(fuzzed)) + 700
        collides = any("also claimed by" in p.message for p in error.problems)
        for problem in error.problems:
            yaml_level = problem.message.startswith(("YAML error", "a campaign file must be"))
            if not yaml_level:
                assert problem.field or problem.message.startswith("cannot"), problem
    if not collides:  # a fuzzed copy that keeps the sample's name refuses both, by design
        assert sample in by_path
        assert not isinstance(
            try_build_dag(LoadedCampaign(sample, by_path[sample].campaign)), CampaignError
        )


@FUZZ
@given(doc=mutated_documents())
def test_fuzz_mutated_campaign_is_valid_or_a_campaign_error(
    tmp_path_factory: Any, doc: Any
) -> None:
    doc["name"] = doc.get("name") if doc.get("name") != SAMPLE["name"] else "fuzzed"
    _check(tmp_path_factory.mktemp("fuzz"), _dump(doc))


@FUZZ
@given(
    doc=mutated_documents(),
    twist=st.sampled_from(range(len(YAML_TWISTS))),
)
def test_fuzz_yaml_anchors_tags_and_syntax_give_campaign_errors(
    tmp_path_factory: Any, doc: Any, twist: int
) -> None:
    _check(tmp_path_factory.mktemp("fuzz"), YAML_TWISTS[twist](_dump(doc)))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(raw=st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_give_campaign_errors(tmp_path_factory: Any, raw: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "sample.yaml").write_text(_dump(SAMPLE))
    (folder / "fuzzed.yaml").write_bytes(raw)
    result = load_folder(folder)
    assert [c.path.name for c in result.campaigns] == ["sample.yaml"]
    assert [e.path.name for e in result.errors] == ["fuzzed.yaml"]


def test_fuzz_ten_megabyte_strings_and_huge_numbers(tmp_path: Path) -> None:
    for where, value in [
        ("description", "x" * 10_000_000),
        ("owner", "ü" * 5_000_000),
        ("retries", {"count": 2**4000}),
        ("retries", {"count": math.inf}),
    ]:
        doc = copy.deepcopy(SAMPLE)
        doc["name"] = "fuzzed"
        doc[where] = value
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        _check(folder, _dump(doc))
