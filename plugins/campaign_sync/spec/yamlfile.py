"""Campaign YAML read as plain data, safely and in time linear in the file's size.

PyYAML's safe loader already refuses ``!!python/...`` tags; on top of it this module refuses
duplicate mapping keys (which YAML would let the last one win), files too large to be a
campaign, and alias expansions that would blow up (a "billion laughs" file).
"""

from __future__ import annotations

from typing import Any

import yaml

from campaign_sync.spec.echo import clip, short

MAX_FILE_BYTES = 1024 * 1024  # a campaign is a few kB; this bounds parse time per file
MAX_NODES = 100_000  # scalars, lists and mappings after alias expansion
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x


class YamlProblem(Exception):
    """A campaign file that is not acceptable YAML; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


class _CampaignLoader(_Base):  # type: ignore[misc,valid-type]
    """The safe loader, refusing duplicate keys with both line numbers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem("mapping keys must be plain values", _line(key_node))
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlProblem(f"duplicate key {short(key)} (first at line {seen[key]})", line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document would have once aliases are expanded (stops counting past the cap)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if children_done:
            total = 1 + sum(sizes.get(id(c), 0) for c in children)
            sizes[id(node)] = min(total, MAX_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_yaml(text: str) -> Any:
    """The one YAML document in ``text`` as plain Python data, or ``YamlProblem``."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_FILE_BYTES:
        raise YamlProblem(
            f"file is {size:,} bytes; a campaign file may hold at most {MAX_FILE_BYTES:,}"
        )
    loader = _CampaignLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise YamlProblem(
                f"the document expands to more than {MAX_NODES:,} values (aliases nested "
                "too deep?)",
                _line(node),
            )
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        if exc.problem and "could not determine a constructor" in exc.problem:
            tag = exc.problem.split("tag", 1)[-1].strip(" '").replace("tag:yaml.org,2002:", "!!")
            raise YamlProblem(
                f"tag {clip(tag, 60)} is not allowed: campaign files hold plain data only "
                "(no Python objects or custom tags)",
                line,
            ) from None
        raise YamlProblem(" ".join(str(exc.problem or exc).split()), line) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        context = exc.context or ""
        if context and exc.context_mark and exc.context_mark.line + 1 != line:
            context += f" (started at line {exc.context_mark.line + 1})"
        message = " ".join(f"{context} {exc.problem or ''}".split()) or "invalid YAML"
        raise YamlProblem(clip(message, 200), line) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(" ".join(str(exc).split())) from None
    except RecursionError:
        raise YamlProblem("the document is nested too deeply") from None
    finally:
        loader.dispose()
