"""Output baselines of critical models: capture, then check later builds against them.

``capture`` builds the selected models (default ``baselines.select``, i.e.
``tag:critical``) with dbt and writes one small JSON file per model under
``<project>/.bulwark/baselines/`` (``baselines.directory``), meant to be committed:
column names and types, row count, and per column the null count, distinct
count, min/max, the sum of numeric columns, plus an order-independent content
hash of all rows. Everything is computed in the database by SQL that dbt runs
(``dbt show --inline``): one aggregate query per model, nothing but the one
result row comes back to Python.

``check`` rebuilds and compares: schema changes, the row count (within
``baselines.row_count_tolerance``: an integer is a number of rows, a float a
fraction of the baseline's rows), per column stats (floats within the relative
``baselines.float_tolerance``), and the content hash (only when no row drift is
allowed). An intended change is accepted by capturing again in the same commit,
so the reviewer sees the new baseline in the diff.

The content hash is the sum over rows of the first 60 bits of md5 of the row's
text (float columns rounded to 10 significant digits first); it is implemented
for DuckDB and PostgreSQL (tested, tests/test_postgres.py), Redshift, Snowflake,
BigQuery and Databricks (written from their docs, untested); other adapters get
``null`` and compare on the stats alone. The hash is compared only between a
baseline and a run on the same adapter, or across adapters (a DuckDB baseline
checked on Postgres: the same text of every non-float value, the same 60 bits) when
the model has no float column; the types then compare by family.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_bulwark.findings import Finding
from dbt_bulwark.project.model import Node, Project

if TYPE_CHECKING:  # pragma: no cover
    from dbt_bulwark.policy import Policy
    from dbt_bulwark.run.dbt_exec import DbtSession

FORMAT_VERSION = 1

# code -> (severity, one-line meaning); docs/hooks/ci.md documents each.
CODES: dict[str, tuple[str, str]] = {
    "BLK530": ("error", "a column was added, removed or retyped since the baseline"),
    "BLK531": ("error", "row count differs from the baseline beyond row_count_tolerance"),
    "BLK532": ("error", "a column statistic differs from the baseline beyond tolerance"),
    "BLK533": ("error", "same stats, but the rows' content hash differs from the baseline"),
    "BLK534": ("warning", "no baseline captured for a selected model"),
    "BLK535": ("error", "a baseline file cannot be read"),
    "BLK536": ("warning", "a baseline file for a model that no longer exists"),
    "BLK537": ("error", "the model failed to build or its stats query failed"),
    "BLK538": ("warning", "the model cannot be built with data here (no data / no source table)"),
}

_NUMERIC = re.compile(r"int|decimal|numeric|number|double|float|real|money|bignumeric")
_FLOAT = re.compile(r"double|float|real")
_ORDERABLE = re.compile(r"char|text|string|date|time|bool|uuid|" + _NUMERIC.pattern)
_COMPLEX = re.compile(r"struct|map|list|\[\]|array|json|variant|object|geography|geometry|blob|"
                      r"bytea|binary|interval")
_PREFIX = "v:"
# content_hash = "<HASH_ALGO>:<sum>": the sum over rows of the first 60 bits (15 hex
# digits) of md5 of the row's text. A baseline without this tag (an older algorithm) is
# never compared by hash.
HASH_ALGO = "md5-60"


def kind_of(data_type: str) -> str:
    t = (data_type or "").lower()
    if _COMPLEX.search(t):
        return "other"
    if _FLOAT.search(t):
        return "float"
    if _NUMERIC.search(t):
        return "number"
    if _ORDERABLE.search(t):
        return "ordered"
    return "other"


# ----------------------------------------------------------------------------- SQL

def _q(name: str) -> str:
    return "{{ adapter.quote(" + json.dumps(name) + ") }}"


def _ref(node: Node) -> str:
    if node.version is not None:
        return "{{ ref(" + json.dumps(node.name) + ", v=" + json.dumps(str(node.version)) + ") }}"
    return "{{ ref(" + json.dumps(node.name) + ") }}"


def columns_sql(nodes: list[Node]) -> str:
    """One query listing (model, position, name, type) of every node's relation."""
    parts = []
    for i, node in enumerate(nodes):
        parts.append(
            "{%- set cols = adapter.get_columns_in_relation(" + _ref(node)[3:-3] + ") -%}\n"
            "{%- for c in cols %}\nselect " + str(i) + " as m, {{ loop.index }} as pos, "
            "'{{ c.name | replace(\"'\", \"''\") }}' as col_name, "
            "'{{ c.data_type | replace(\"'\", \"''\") }}' as col_type\nunion all\n"
            "{%- endfor %}")
    return "\n".join(parts) + "\nselect -1 as m, 0 as pos, '' as col_name, '' as col_type"


def _as_text(expr: str) -> str:
    # a prefix keeps the value a string through dbt's agate type inference
    return "('" + _PREFIX + "' || cast(" + expr + " as {{ dbt.type_string() }}))"


def _hash_sql(adapter: str, cols: list[tuple[str, str]]) -> str | None:
    pieces = []
    for name, dtype in cols:
        col = _q(name)
        if adapter == "duckdb":
            text = (f"format('{{:.10g}}', {col})" if kind_of(dtype) == "float"
                    else f"cast({col} as varchar)")
            pieces.append(f"coalesce({text}, '\\N')")
        else:
            expr = (f"round(cast({col} as numeric), 10)" if kind_of(dtype) == "float"
                    else col)
            pieces.append(f"coalesce(cast({expr} as {{{{ dbt.type_string() }}}}), '\\N')")
    row = " || '|' || ".join(pieces) if pieces else "''"
    if adapter == "duckdb":         # the same 60 bits as PostgreSQL's: the hashes agree
        return f"sum(('0x' || substr(md5({row}), 1, 15))::bigint)"
    if adapter in ("postgres", "redshift"):
        return f"sum(('x' || substr(md5({row}), 1, 15))::bit(60)::bigint::numeric)"
    if adapter == "snowflake":      # untested: written from Snowflake's docs
        return f"sum(to_number(substr(md5({row}), 1, 15), 'XXXXXXXXXXXXXXX'))"
    if adapter == "bigquery":       # untested: written from BigQuery's docs
        return (f"sum(cast(cast(concat('0x', substr(to_hex(md5({row})), 1, 15)) as int64) "
                "as bignumeric))")
    if adapter in ("databricks", "spark"):   # untested: written from Databricks' docs
        return f"sum(cast(conv(substr(md5({row}), 1, 15), 16, 10) as decimal(38, 0)))"
    return None


def stats_sql(node: Node, cols: list[tuple[str, str]], adapter: str) -> str:
    sel = [f"{_as_text('count(*)')} as {_q('rows')}"]
    for i, (name, dtype) in enumerate(cols):
        c = _q(name)
        kind = kind_of(dtype)
        sel.append(f"{_as_text(f'count(*) - count({c})')} as {_q(f'n{i}')}")
        if kind != "other":
            sel.append(f"{_as_text(f'count(distinct {c})')} as {_q(f'd{i}')}")
            sel.append(f"{_as_text(f'min({c})')} as {_q(f'lo{i}')}")
            sel.append(f"{_as_text(f'max({c})')} as {_q(f'hi{i}')}")
        if kind in ("number", "float"):
            sel.append(f"{_as_text(f'sum({c})')} as {_q(f's{i}')}")
    h = _hash_sql(adapter, cols)
    if h:
        sel.append(f"{_as_text(h)} as {_q('hash')}")
    return "select\n    " + ",\n    ".join(sel) + "\nfrom " + _ref(node)


# ----------------------------------------------------------------------------- values

def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v)
    return s[len(_PREFIX):] if s.startswith(_PREFIX) else s


def _number(s: str | None) -> int | float | None:
    if s is None:
        return None
    try:
        d = Decimal(s.strip())
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    if d == d.to_integral_value() and abs(d) < Decimal(10) ** 30:
        return int(d)
    return float(d)


@dataclass
class Snapshot:
    """The measured output of one model (what a baseline file holds)."""

    model: str
    version: Any
    unique_id: str
    adapter: str
    row_count: int
    content_hash: str | None
    columns: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bulwark_baseline": FORMAT_VERSION, "model": self.model}
        if self.version is not None:
            out["version"] = self.version
        out.update({"unique_id": self.unique_id, "adapter": self.adapter,
                    "row_count": self.row_count, "content_hash": self.content_hash,
                    "columns": self.columns})
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        if not isinstance(data, dict) or data.get("bulwark_baseline") != FORMAT_VERSION:
            raise ValueError("not a bulwark baseline (format version "
                             f"{FORMAT_VERSION} expected)")
        cols = data.get("columns")
        if not isinstance(cols, list) or not all(isinstance(c, dict) and "name" in c
                                                 for c in cols):
            raise ValueError("`columns` must be a list of objects with a name")
        return cls(str(data.get("model")), data.get("version"), str(data.get("unique_id", "")),
                   str(data.get("adapter", "")), int(data.get("row_count") or 0),
                   data.get("content_hash"), cols)


def _column_stats(i: int, name: str, dtype: str, row: dict[str, Any]) -> dict[str, Any]:
    kind = kind_of(dtype)
    col: dict[str, Any] = {"name": name, "type": dtype,
                           "null_count": _number(_text(row.get(f"n{i}")))}
    if kind != "other":
        col["distinct_count"] = _number(_text(row.get(f"d{i}")))
        lo, hi = _text(row.get(f"lo{i}")), _text(row.get(f"hi{i}"))
        if kind in ("number", "float"):
            col["min"], col["max"] = _number(lo), _number(hi)
            col["sum"] = _number(_text(row.get(f"s{i}")))
        else:
            col["min"], col["max"] = lo, hi
    return col


def _tag_hash(value: str | None) -> str | None:
    return f"{HASH_ALGO}:{value}" if value is not None else None


def hashes_comparable(base: Snapshot, now: Snapshot) -> bool:
    """Same hash algorithm, and either the same adapter or no float column (floats are
    rendered as text differently by each engine; every other type renders the same on
    DuckDB and PostgreSQL)."""
    if not base.content_hash or not now.content_hash:
        return False
    algo = str(base.content_hash).partition(":")[0] if ":" in str(base.content_hash) else ""
    algo_now = str(now.content_hash).partition(":")[0] if ":" in str(now.content_hash) else ""
    if algo != algo_now:
        return False
    if base.adapter == now.adapter:
        return True
    return not any(kind_of(str(c.get("type", ""))) == "float" for c in now.columns)


def _lower_keys(row: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in row.items()}


# ----------------------------------------------------------------------------- measuring

@dataclass
class Measured:
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)   # uid -> (code, msg)


def measure(session: DbtSession, nodes: list[Node]) -> Measured:
    """Build the nodes with data (when not built yet this session) and measure them."""
    out = Measured()
    ready: list[Node] = []
    for n in nodes:
        why = session.no_data_reason(n) or session.cannot_build_reason(n.unique_id)
        if why:
            out.problems[n.unique_id] = ("BLK538", why)
        else:
            ready.append(n)
    if not ready:
        return out
    session.seed()
    todo = [n for n in ready if n.unique_id not in session.built_with_data]
    if todo:
        embedded = session.engine.isolated
        from dbt_bulwark.run.dbt_exec import selector_for

        sel = sorted({("+" if embedded else "") + selector_for(n) for n in todo})
        inv = session.invoke(["build", "--select", *sel, "--resource-type", "model",
                              "--resource-type", "snapshot", "--resource-type", "seed"],
                             "dbt build (baselines)")
        failed = {r.unique_id: r.message for r in inv.results if r.status == "error"}
        for r in inv.results:
            if r.status == "success":
                session.built_with_data.add(r.unique_id)
        for n in todo:
            if n.unique_id in failed:
                out.problems[n.unique_id] = ("BLK537", f"failed to build: {failed[n.unique_id]}")
            elif n.unique_id not in session.built_with_data:
                why = inv.error or "not built (an upstream node failed)"
                out.problems[n.unique_id] = ("BLK537", f"failed to build: {why}")
    ready = [n for n in ready if n.unique_id not in out.problems]
    if not ready:
        return out
    inv = session.query(columns_sql(ready), limit=100000)
    if not inv.success:
        for n in ready:
            out.problems[n.unique_id] = ("BLK537", f"cannot read its columns: {inv.error}")
        return out
    cols: dict[int, list[tuple[int, str, str]]] = {}
    for raw in inv.rows:
        rec = _lower_keys(raw)
        m = int(rec["m"])
        if m >= 0:
            cols.setdefault(m, []).append((int(rec["pos"]), str(rec["col_name"]),
                                           str(rec["col_type"])))
    adapter = session.engine.adapter
    for i, node in enumerate(ready):
        ordered = [(name, dtype) for _, name, dtype in sorted(cols.get(i, []))]
        if not ordered:
            out.problems[node.unique_id] = ("BLK537", "its relation has no columns "
                                            "(was it built?)")
            continue
        q = session.query(stats_sql(node, ordered, adapter))
        if not q.success or not q.rows:
            out.problems[node.unique_id] = ("BLK537", f"stats query failed: {q.error}")
            continue
        row = _lower_keys(q.rows[0])
        snap = Snapshot(node.name, node.version, node.unique_id, adapter,
                        int(_number(_text(row.get("rows"))) or 0),
                        _tag_hash(_text(row.get("hash"))),
                        [_column_stats(j, name, dtype, row)
                         for j, (name, dtype) in enumerate(ordered)])
        out.snapshots[node.unique_id] = snap
    return out


# ----------------------------------------------------------------------------- files

def baseline_dir(session_or_root: Path, policy: Policy) -> Path:
    return Path(session_or_root) / str(policy.baselines.directory)


def file_name(node: Node) -> str:
    return f"{node.label}.json"


def render(snapshot: Snapshot) -> str:
    return json.dumps(snapshot.to_json(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_atomic(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically; False when the file already says that."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    from dbt_bulwark.findings import UsageError
    from dbt_bulwark.project.fs import UnsafeWrite, atomic_write

    try:
        atomic_write(path, text.encode("utf-8"))
    except UnsafeWrite as exc:  # a symlink out, a read-only or hard-linked file: exit 2
        raise UsageError(f"baseline not written: {exc}") from None
    return True


def select_models(project: Project, policy: Policy, selector: str | None) -> list[Node]:
    from dbt_bulwark.project.selector import select

    spec = selector if selector else policy.baselines.select
    if isinstance(spec, list):
        spec = " ".join(str(s) for s in spec)
    chosen = select(project, spec, None, ["model"])
    return sorted((n for n in chosen if isinstance(n, Node) and n.package_name == project.name),
                  key=lambda n: n.unique_id)


# ----------------------------------------------------------------------------- compare

@dataclass
class Tolerances:
    float_rel: float = 1e-9
    rows: int | float = 0

    @classmethod
    def from_policy(cls, policy: Policy) -> Tolerances:
        return cls(float(policy.baselines.float_tolerance),
                   policy.baselines.row_count_tolerance)

    def row_allowance(self, base_rows: int) -> float:
        if isinstance(self.rows, float):
            return abs(self.rows) * base_rows
        return abs(self.rows)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    return "null" if v is None else str(v)


def _delta(old: Any, new: Any) -> str:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) \
            and not isinstance(old, bool) and not isinstance(new, bool):
        d = new - old
        sign = "+" if d >= 0 else ""
        rel = f", {sign}{d / old * 100:.3g}%" if old else ""
        return f"{_fmt(old)} -> {_fmt(new)} ({sign}{_fmt(d)}{rel})"
    return f"{_fmt(old)} -> {_fmt(new)}"


def _close(old: Any, new: Any, rel: float, abs_allow: float = 0.0) -> bool:
    if old == new:
        return True
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        diff = abs(new - old)
        return diff <= abs_allow or diff <= rel * max(abs(old), abs(new))
    return False


_TYPE_FAMILY = [
    (re.compile(r"^(character varying|varchar|char|character|text|string|nvarchar|bpchar)\b"),
     "string"),
    (re.compile(r"^(bigint|int8|long)\b"), "bigint"),
    (re.compile(r"^(integer|int|int4|signed)\b"), "integer"),
    (re.compile(r"^(smallint|int2|short)\b"), "smallint"),
    (re.compile(r"^(double precision|double|float8|float)\b"), "double"),
    (re.compile(r"^(real|float4)\b"), "real"),
    (re.compile(r"^(boolean|bool)\b"), "boolean"),
    (re.compile(r"^(timestamp with time zone|timestamptz|timestamp_tz)\b"), "timestamptz"),
    (re.compile(r"^(timestamp without time zone|timestamp|datetime|timestamp_ntz)\b"),
     "timestamp"),
]


def type_family(data_type: str) -> str:
    """A type as comparable across adapters: ``DECIMAL(18,2)`` and ``numeric(18,2)`` are
    ``numeric(18,2)``; every text type is ``string`` (lengths differ by adapter)."""
    t = " ".join(data_type.lower().split())
    m = re.match(r"^(decimal|numeric|number)\s*(\((.*)\))?", t)
    if m:
        return "numeric" + (f"({m.group(3).replace(' ', '')})" if m.group(2) else "")
    for rx, family in _TYPE_FAMILY:
        if rx.match(t):
            return family
    return t


def same_type(old: str, new: str, same_adapter: bool) -> bool:
    """Same adapter: the type text as the database reports it; across adapters (a
    DuckDB baseline checked on Postgres): the type family (:func:`type_family`)."""
    if same_adapter:
        return old.lower() == new.lower()
    return type_family(old) == type_family(new)


@dataclass
class Diff:
    """The readable differences of one model, and the findings they make."""

    label: str
    lines: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def compare(node: Node, base: Snapshot, now: Snapshot, tol: Tolerances,
            baseline_path: str) -> Diff:
    diff = Diff(node.label)
    if base.adapter != now.adapter:
        how = "compared" if hashes_comparable(base, now) else "not compared"
        diff.notes.append(f"baseline captured on {base.adapter or '?'}, measured on "
                          f"{now.adapter}: types compared by family, content hash {how}")
    hint = (f"unintended: fix the model; intended: `bulwark baseline capture {diff.label}` "
            f"and commit {baseline_path}")

    def add(code: str, text: str) -> None:
        diff.lines.append(text)
        diff.findings.append(Finding(node.repo_path, 1, 0, code, f"{diff.label}: {text}",
                                     "error", hint, node.unique_id))

    old_cols = {str(c["name"]).lower(): c for c in base.columns}
    new_cols = {str(c["name"]).lower(): c for c in now.columns}
    for key, c in old_cols.items():
        if key not in new_cols:
            add("BLK530", f"column {c['name']} removed (was {c.get('type')})")
    for key, c in new_cols.items():
        if key not in old_cols:
            add("BLK530", f"column {c['name']} added ({c.get('type')})")
        elif not same_type(str(old_cols[key].get("type", "")), str(c.get("type", "")),
                           base.adapter == now.adapter):
            add("BLK530", f"column {c['name']} type {old_cols[key].get('type')} -> "
                f"{c.get('type')}")
    allow = tol.row_allowance(base.row_count)
    if not _close(base.row_count, now.row_count, 0.0, allow):
        add("BLK531", f"row count {_delta(base.row_count, now.row_count)}"
            + (f"; allowed drift {_fmt(allow)}" if allow else ""))
    drift = allow / base.row_count if base.row_count else 0.0
    stat_problems = 0
    for key, c in new_cols.items():
        old = old_cols.get(key)
        if old is None:
            continue
        kind = kind_of(str(c.get("type", "")))
        for stat in ("null_count", "distinct_count", "min", "max", "sum"):
            if stat not in old and stat not in c:
                continue
            a, b = old.get(stat), c.get(stat)
            if stat in ("null_count", "distinct_count"):
                ok = _close(a, b, 0.0, allow)
            elif stat == "sum":
                ok = _close(a, b, max(tol.float_rel if kind == "float" else 0.0, drift))
            else:
                ok = _close(a, b, tol.float_rel if kind == "float" else 0.0) or \
                    (drift > 0 and isinstance(a, (int, float)) and _close(a, b, drift))
            if not ok:
                stat_problems += 1
                add("BLK532", f"column {c['name']}: {stat} {_delta(a, b)}")
    if not diff.findings and tol.rows == 0 and hashes_comparable(base, now) \
            and base.content_hash != now.content_hash:
        add("BLK533", "rows changed (content hash differs) although counts and stats match")
    return diff


def load_baseline(path: Path) -> Snapshot:
    return Snapshot.from_json(json.loads(path.read_text(encoding="utf-8")))


# ----------------------------------------------------------------------------- runs

@dataclass
class BaselineRun:
    status: str
    summary: str
    findings: list[Finding] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


def check_baselines(session: Any, policy: Any, selector: str | None) -> BaselineRun:
    """Rebuild the selected models and compare them with their baseline files."""
    project = session.project
    nodes = select_models(project, policy, selector)
    directory = baseline_dir(session.project_dir, policy)
    rel_dir = _repo_rel(session, directory)
    run = BaselineRun("passed", "")
    present = {p.name for p in directory.glob("*.json")} if directory.is_dir() else set()
    all_models = {file_name(n) for n in project.models(include_packages=False)}
    for stale in sorted(present - all_models):
        run.findings.append(Finding(f"{rel_dir}/{stale}", 0, 0, "BLK536",
                                    "baseline of a model that no longer exists", "warning",
                                    "delete the file"))
    if not nodes:
        run.summary = "no models selected by baselines.select"
        return run
    with_base: list[Any] = []
    missing: list[Any] = []
    for n in nodes:
        (with_base if file_name(n) in present else missing).append(n)
    for n in missing:
        run.findings.append(Finding(n.repo_path, 1, 0, "BLK534",
                                    f"{n.name}: no baseline captured ({rel_dir}/"
                                    f"{file_name(n)})", "warning",
                                    f"bulwark baseline capture {n.name}, then commit the file",
                                    n.unique_id))
    if not with_base:
        run.status = "skipped"
        run.summary = f"no baseline captured for the {len(nodes)} selected model(s)"
        return run
    tol = Tolerances.from_policy(policy)
    bases: dict[str, Any] = {}
    for n in with_base:
        path = directory / file_name(n)
        try:
            bases[n.unique_id] = load_baseline(path)
        except (OSError, ValueError) as exc:
            run.findings.append(Finding(f"{rel_dir}/{file_name(n)}", 1, 0, "BLK535",
                                        f"cannot read the baseline: {exc}", "error",
                                        f"capture it again: bulwark baseline capture {n.name}",
                                        n.unique_id))
    measured = measure(session, [n for n in with_base if n.unique_id in bases])
    checked = skipped = 0
    for n in with_base:
        if n.unique_id not in bases:
            continue
        problem = measured.problems.get(n.unique_id)
        if problem is not None:
            code, msg = problem
            sev = "warning" if code == "BLK538" else "error"
            skipped += code == "BLK538"
            run.findings.append(Finding(n.repo_path, 1, 0, code, f"{n.name}: {msg}", sev,
                                        "use --target to check on your warehouse"
                                        if code == "BLK538" else "fix the model", n.unique_id))
            run.details.append(f"{n.name}: {'skipped' if sev == 'warning' else 'error'}: {msg}")
            continue
        checked += 1
        diff = compare(n, bases[n.unique_id], measured.snapshots[n.unique_id], tol,
                          f"{rel_dir}/{file_name(n)}")
        run.findings.extend(diff.findings)
        snap = measured.snapshots[n.unique_id]
        if diff.lines:
            run.details.append(f"{diff.label} ({rel_dir}/{file_name(n)}): "
                               f"{len(diff.lines)} difference(s)")
            run.details.extend("  " + line for line in diff.lines)
        else:
            run.details.append(f"{diff.label}: matches ({snap.row_count} rows, "
                               f"{len(snap.columns)} columns)")
        run.details.extend("  " + note for note in diff.notes)
    errors = [f for f in run.findings if f.severity == "error"]
    differing = len({f.node for f in errors})
    if errors:
        run.status = "failed"
        run.summary = f"{differing} of {len(with_base)} model(s) differ from the baseline"
    elif checked == 0:
        run.status = "skipped"
        run.summary = f"none of the {len(with_base)} model(s) could be measured here"
    else:
        run.summary = f"{checked} model(s) match their baseline"
    if missing:
        run.summary += f"; {len(missing)} without baseline"
    if skipped:
        run.summary += f"; {skipped} without data"
    return run


def capture_baselines(session: Any, policy: Any, selector: str | None) -> BaselineRun:
    project = session.project
    nodes = select_models(project, policy, selector)
    directory = baseline_dir(session.project_dir, policy)
    rel_dir = _repo_rel(session, directory)
    run = BaselineRun("passed", "")
    if not nodes:
        run.status = "failed" if selector else "passed"
        run.summary = "no models selected" + ("" if selector else " by baselines.select")
        return run
    measured = measure(session, nodes)
    for n in nodes:
        problem = measured.problems.get(n.unique_id)
        if problem is not None:
            code, msg = problem
            run.findings.append(Finding(n.repo_path, 1, 0, code, f"{n.name}: {msg}", "error",
                                        "fix the model, or capture on a target with data "
                                        "(--target)", n.unique_id))
            continue
        snap = measured.snapshots[n.unique_id]
        path = directory / file_name(n)
        changed = write_atomic(path, render(snap))
        rel = f"{rel_dir}/{file_name(n)}"
        run.written.append(rel)
        run.details.append(f"{'wrote' if changed else 'unchanged'} {rel} "
                           f"({snap.row_count} rows, {len(snap.columns)} columns)")
    if run.findings:
        run.status = "failed"
    run.summary = f"{len(run.written)} baseline(s) captured" + (
        f", {len(run.findings)} model(s) could not be" if run.findings else "")
    return run


def _repo_rel(session: Any, path: Path) -> str:
    try:
        return path.resolve().relative_to(Path(session.repo_root).resolve()).as_posix()
    except ValueError:
        return path.as_posix()
