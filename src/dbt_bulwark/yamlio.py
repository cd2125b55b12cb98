"""Fast YAML reading with line numbers (PyYAML's C loader when available).

Mappings come back as :class:`LineDict`: a plain ``dict`` that also remembers the
1-based line of the mapping (``.line``) and of each key (``.key_line(k)``), so
findings can point at the line a user must edit. Rewriting YAML is not done here
(see :mod:`dbt_bulwark.yaml_edit`, which inserts text at exact positions and verifies the result).
"""

from __future__ import annotations

from typing import Any

import yaml

try:  # the C loader is ~10x faster; fall back when libyaml is missing
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class LineDict(dict):
    """A dict with the source line of itself and of its keys (1-based; 0 = unknown)."""

    __slots__ = ("line", "key_lines")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[Any, int] = {}

    def key_line(self, key: Any, default: int | None = None) -> int:
        return self.key_lines.get(key, self.line if default is None else default)

    def __reduce__(self):  # keep line info through pickle (the parse cache)
        return (_rebuild_linedict, (dict(self), self.line, self.key_lines))


def _rebuild_linedict(data: dict, line: int, key_lines: dict) -> LineDict:
    d = LineDict(data)
    d.line = line
    d.key_lines = key_lines
    return d


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type,unused-ignore]
    pass


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


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class YamlError(Exception):
    """Invalid YAML: carries the 1-based line and column of the problem."""

    def __init__(self, message: str, line: int = 0, col: int = 0):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


def decode(data: bytes) -> str:
    """Bytes to text the way dbt reads files (UTF-8, BOM tolerated); raises UnicodeDecodeError."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8")


def load(text: str) -> Any:
    """Parse one YAML document with line info; raises :class:`YamlError`."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - safe loader subclass
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
