"""Fast YAML reading with line numbers (PyYAML's C loader when available).

Mappings come back as :class:`LineDict`: a plain ``dict`` that also remembers the
1-based line of the mapping (``.line``) and of each key (``.key_line(k)``), so
findings can point at the line a user must edit. Rewriting YAML is not done here
(see :mod:`dbt_bulwark.yaml_edit`, which inserts text at exact positions and verifies the result).
"""

from __future__ import annotations

import functools
import re
from typing import Any


class LineDict(dict):
    """A dict with the source line of itself and of its keys (1-based; 0 = unknown)."""

    __slots__ = ("line", "key_lines")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[Any, int] = {}

    def key_line(self, key: Any, default: int | None = None) -> int:
        return self.key_lines.get(key, self.line if default is None else default)

    def __reduce__(self) -> tuple[Any, ...]:  # keep line info through pickle (the parse cache)
        return (_rebuild_linedict, (dict(self), self.line, self.key_lines))


def _rebuild_linedict(data: dict, line: int, key_lines: dict) -> LineDict:
    d = LineDict(data)
    d.line = line
    d.key_lines = key_lines
    return d


MAX_ALIAS_EXPANSION = 100_000   # nodes that aliases may add to a document once expanded


class AliasLimit(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def _check_aliases(root: Any, limit: int = MAX_ALIAS_EXPANSION) -> None:
    """Refuse a document whose aliases expand past ``limit`` nodes (a "billion laughs"
    alias bomb) or refer to their own ancestors. The composed graph shares aliased
    nodes, so this is linear in its size; what would explode is every consumer that
    walks, copies, hashes or ``repr()``s the data."""
    sizes: dict[int, int] = {}
    seen: dict[int, int] = {}      # node id -> how many times it is reached
    first_big: list[Any] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1
            for child in _children(node):
                total += sizes[id(child)]
            sizes[key] = total
            continue
        seen[key] = seen.get(key, 0) + 1
        if key in sizes:
            if seen[key] > 1 and sizes[key] > 1_000 and not first_big:
                first_big.append(node)
            continue
        if key in on_path:
            raise AliasLimit("an alias refers to a node that contains it (recursive alias)",
                             node.start_mark.line + 1)
        on_path.add(key)
        stack.append((node, True))
        for child in reversed(_children(node)):
            stack.append((child, False))
    if sizes[id(root)] - len(sizes) > limit:
        where = first_big[0] if first_big else root
        raise AliasLimit(f"YAML aliases expand this document to {sizes[id(root)]:,} nodes "
                         f"(more than {limit:,}: an alias bomb?); not loaded",
                         where.start_mark.line + 1)


def _children(node: Any) -> list[Any]:
    value = node.value
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, tuple):
                out.extend(item)
            else:
                out.append(item)
        return out
    return []


def _construct_mapping(loader: Any, node: Any) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            key = str(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


@functools.cache
def _loader_class() -> Any:
    """PyYAML's loader with line numbers, made on first use: a warm run reads every YAML
    file from the parse cache and never imports PyYAML."""
    import yaml

    try:  # the C loader is ~10x faster; fall back when libyaml is missing
        from yaml import CSafeLoader as _BaseLoader
    except ImportError:  # pragma: no cover
        from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

    class _Loader(_BaseLoader):  # type: ignore[misc,valid-type,unused-ignore]
        check_aliases = False
        _resolved: dict[tuple[str, bool, bool], str] = {}

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            """The tag of a node, as PyYAML resolves it; a scalar's is remembered (a pure
            function of its text: the same keys and words recur in every file)."""
            if kind is yaml.ScalarNode and not self.yaml_path_resolvers:
                key = (value, bool(implicit[0]), bool(implicit[1]))
                tag = self._resolved.get(key)
                if tag is None:
                    tag = super().resolve(kind, value, implicit)
                    if len(self._resolved) < 200_000:
                        self._resolved[key] = tag
                return tag
            return super().resolve(kind, value, implicit)

        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            if self.check_aliases:
                _check_aliases(node)
            return self.construct_document(node)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    return _Loader


class YamlError(Exception):
    """Invalid YAML: carries the 1-based line and column of the problem."""

    def __init__(self, message: str, line: int = 0, col: int = 0, code: str = "BLK001"):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col
        self.code = code   # BLK001 invalid YAML, BLK005 over a resource limit


def decode(data: bytes) -> str:
    """Bytes to text the way dbt reads files (UTF-8, BOM tolerated); raises UnicodeDecodeError."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = data.decode("utf-8")
    if "\r" in text:   # a lone CR is a line break (YAML and Jinja count it so): one line
        text = _LONE_CR.sub("\n", text)   # numbering everywhere; offsets are unchanged
    return text


_LONE_CR = re.compile(r"\r(?!\n)")
_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s,\[\]{}]")


def load(text: str) -> Any:
    """Parse one YAML document with line info; raises :class:`YamlError`."""
    import yaml

    loader = _loader_class()(text)
    # no anchor (or no alias), nothing to expand: the common case costs one search
    loader.check_aliases = "*" in text and _ANCHOR.search(text) is not None
    try:
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except AliasLimit as exc:
        raise YamlError(str(exc), exc.line, 1, "BLK005") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        col = mark.column + 1 if mark else 0
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        raise YamlError(f"invalid YAML: {msg}", line, col) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlError("invalid YAML: nesting too deep") from None


def line_of(obj: Any, key: Any = None, default: int = 0) -> int:
    """Line of ``obj[key]`` (or of ``obj``) when ``obj`` is a :class:`LineDict`."""
    if isinstance(obj, LineDict):
        if key is not None:
            return obj.key_lines.get(key, obj.line)
        return obj.line
    return default
