"""Stand-in renders: judge a model bulwark cannot fully render against its git base.

A model that calls a macro of a package that is not installed (every fresh clone), or
that asks the warehouse (``run_query``, ``adapter.get_columns_in_relation``), has no SQL
bulwark can trust: fast-compile says "not checked". Its *change* can still be judged.
Both revisions are rendered the same way, each unknown call standing in as one word
(:data:`dbt_bulwark.sql.STANDIN`), and each stand-in is then replaced by whichever
of a few fillers (a column name, nothing, a one-row query) makes the base's SQL parse.
With the same fillers (or, failing that, any others):

* the base parses and the head parses with no filler: the change broke the SQL
  (a misspelled keyword, a missing comma, an unclosed parenthesis) -> BLK130;
* a column the head reads from a ref()/source() of known shape is provided by none,
  while the base's same read resolved -> BLK140.

Only nodes that the change touched (their file, or a direct parent's) are rendered, so a
clean tree or an unrelated commit costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dbt_bulwark.sql import STANDIN

# what a stand-in is replaced by, tried in this order
FILLERS = (STANDIN, "", f"select null as {STANDIN}")
_MARK = re.compile(rf"(?<![\w$]){STANDIN}(?![\w$])", re.I)
MAX_STANDINS = 16      # more unknown calls than this in one model: not judged
MAX_TRIALS = 40        # parses per search


@dataclass
class Marked:
    """A stand-in render: its SQL with the stand-ins, and where each one is."""

    raw: str                          # the template
    sql: str                          # rendered, stand-ins as STANDIN
    marks: list[tuple[int, int]]      # (start, end) of each stand-in in ``sql``
    relations: dict[str, str]         # identifier -> unique_id (compiled.relations)
    # what the render took from something unknown besides the stand-ins (a loop over it,
    # a test of it: see jinja_env.record_unknown_flow), and the unknown names and
    # warehouse calls it met
    flow: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()

    def fill(self, choice: list[int]) -> tuple[str, list[tuple[int, int, int]]]:
        """The SQL with stand-in k replaced by ``FILLERS[choice[k]]``, and for each
        stand-in (filled start, filled end, marked start)."""
        out: list[str] = []
        where: list[tuple[int, int, int]] = []
        pos = 0
        size = 0
        for (a, b), c in zip(self.marks, choice, strict=True):
            out.append(self.sql[pos:a])
            size += a - pos
            text = FILLERS[c]
            where.append((size, size + len(text), a))
            out.append(text)
            size += len(text)
            pos = b
        out.append(self.sql[pos:])
        return "".join(out), where


def marked_render(project: Any, node: Any) -> Marked | None:
    """The stand-in render of ``node``, or None when it does not render (cached under the
    key of the node's compile: a commit compares the same base renders every time)."""
    from dbt_bulwark.sql.compiler import compile_key

    cache = getattr(project, "cache", None)
    key = compile_key(project, node) if cache is not None else None
    if key is None or cache is None:
        return _marked_render(project, node)
    key = ("marked-render", *key[1:])
    hit = cache.get(key)
    if isinstance(hit, Marked) or hit is False:
        return hit or None
    out = _marked_render(project, node)
    cache.put(key, out if out is not None else False)
    return out


def _marked_render(project: Any, node: Any) -> Marked | None:
    from dbt_bulwark.sql.compiler import compile_node
    from dbt_bulwark.sql.jinja_env import record_unknown_flow

    with record_unknown_flow() as flow:
        compiled = compile_node(project, node, standins=True)
    if compiled.sql is None or compiled.error is not None:
        return None
    marks = [(m.start(), m.end()) for m in _MARK.finditer(compiled.sql)]
    if len(marks) > MAX_STANDINS:
        return None
    return Marked(node.raw_code, compiled.sql, marks, dict(compiled.relations),
                  tuple(sorted(set(flow))),
                  tuple(sorted(set(compiled.undefined) | set(compiled.warehouse_calls))))


class Parser:
    """Does SQL parse? The same rule as fast-compile's syntax check, without its repairs:
    DuckDB's parser for a DuckDB project, else sqlglot in the dialect (any common dialect
    when it is a guess), and no unbalanced parenthesis or unterminated string."""

    def __init__(self, dialect: str, how: str, cache: Any = None):
        from dbt_bulwark.sql.sql_verdicts import GUESS_DIALECTS

        self.dialect = dialect
        self.how = how
        self.dialects: tuple[str, ...] = GUESS_DIALECTS if how == "guess" else (dialect,)
        self.trials = 0
        self.cache = cache      # a content-hash cache of the verdicts (the base's SQL is
        #                         judged again on every commit until the base moves)

    def error(self, sql: str) -> int | None:
        """None when ``sql`` parses, else the offset of the (first) error."""
        self.trials += 1
        if self.cache is None:
            return self._error(sql)
        from dbt_bulwark.cache import content_hash

        key = ("standin-parse", self.dialect, self.how, content_hash(sql))
        hit = self.cache.get(key)
        if isinstance(hit, tuple) and len(hit) == 1 and (hit[0] is None or
                                                         isinstance(hit[0], int)):
            return hit[0]
        off = self._error(sql)
        self.cache.put(key, (off,))
        return off

    def _error(self, sql: str) -> int | None:
        from dbt_bulwark.sql.sql_verdicts import _GLUED, _duckdb_parse, _lexical, _sqlglot_parse

        sql = _GLUED.sub(" ", sql)   # (offsets shift by a few characters: only a guide)
        if self.dialect == "duckdb" and self.how != "guess":
            duck = _duckdb_parse(sql)
            if duck is None:
                return None
            if isinstance(duck, tuple):
                return duck[0]
        lex = _lexical(sql, self.dialects)
        if lex is not None:
            return lex[0]
        first: int | None = None
        for d in self.dialects:
            err = _sqlglot_parse(sql, d)
            if err is None:
                return None
            first = err[0] if first is None else first
        return first if first is not None else 0


def choose(marked: Marked, parser: Parser, start: list[int] | None = None
           ) -> list[int] | None:
    """Fillers that make ``marked`` parse (a greedy search from ``start``), else None.

    Each stand-in at or before the error is tried with every filler in turn, keeping the
    one that parses or that moves the error furthest along."""
    k = len(marked.marks)
    choice = list(start) if start is not None and len(start) == k else [0] * k
    budget = parser.trials + MAX_TRIALS

    def err_at(ch: list[int]) -> int | None:
        sql, where = marked.fill(ch)
        off = parser.error(sql)
        if off is None:
            return None
        delta = 0     # the offset in the marked SQL (fillers have other lengths)
        for fs, fe, ms in where:
            if off >= fe:
                delta = ms + len(STANDIN) - fe
            elif off >= fs:
                return ms
            else:
                break
        return off + delta

    err = err_at(choice)
    if err is None:
        return choice
    for i in range(k):
        if marked.marks[i][0] > err + 200:
            break   # a stand-in after the error cannot be its cause
        best_err, best = err, choice[i]
        for c in range(len(FILLERS)):
            if c == choice[i]:
                continue
            if parser.trials >= budget:
                return None
            trial = choice[:]
            trial[i] = c
            e = err_at(trial)
            if e is None:
                return trial
            if e > best_err:
                best_err, best = e, c
        choice[i] = best
        err = best_err
    return None


@dataclass
class Verdict:
    """What the head's stand-in render says that the base's did not."""

    syntax: tuple[int, int, str] | None = None            # (line, col, message) in raw
    columns: list[tuple[int, int, str]] | None = None     # (line, col, qualified name)


def compare(head: Marked, base: Marked, parser: Parser, check_columns: bool,
            head_upstream: Callable[[Iterable[str]], dict[str, Any] | None],
            base_upstream: Callable[[Iterable[str]], dict[str, Any] | None],
            syntax_changed: bool) -> Verdict:
    """Judge the head render of a node against its base render (same node)."""
    from dbt_bulwark.sql.compiler import TemplateMap, line_col_to_offset

    out = Verdict()
    base_choice = choose(base, parser)
    if base_choice is None:
        return out     # the base does not parse with any filler: nothing to compare with
    if len(base_choice) == len(head.marks):
        # the same stand-ins: the base's fillers, and no other (another filler could make
        # broken SQL parse by accident: `x as k y` parses once `x` is nothing)
        head_choice: list[int] | None = base_choice
        if parser.error(head.fill(base_choice)[0]) is not None:
            head_choice = None
    else:   # the change added or removed unknown calls: any fillers that parse
        head_choice = choose(head, parser)
    if head_choice is None:
        if not syntax_changed:
            return out
        start = base_choice if len(base_choice) == len(head.marks) else [0] * len(head.marks)
        sql, _where = head.fill(start)
        message, offset = _syntax_message(sql, parser)
        line, col = TemplateMap(head.raw, sql).position(offset)
        out.syntax = (line, col, message)
        return out
    if not check_columns:
        return out
    up_head = head_upstream(head.relations.values())
    up_base = base_upstream(base.relations.values())
    if not up_head or up_base is None:
        return out
    head_sql, _w = head.fill(head_choice)
    unknown = _unknown(head_sql, parser, _by_ident(head.relations, up_head))
    if not unknown:
        return out
    base_sql, _w2 = base.fill(base_choice)
    before = {(u.table or "", u.name.lower())
              for u in _unknown(base_sql, parser, _by_ident(base.relations, up_base))}
    found: list[tuple[int, int, str]] = []
    tmap = TemplateMap(head.raw, head_sql)
    for u in unknown:
        if (u.table or "", u.name.lower()) in before:
            continue
        line, col = tmap.position(line_col_to_offset(head_sql, u.line, u.col))
        found.append((line, col, f"{u.table}.{u.name}" if u.table else u.name))
    out.columns = found or None
    return out


@dataclass
class StandinSchemas:
    """The output columns of a model at the base and the head, read from its stand-in
    renders (column names only: the types of what stands in are unknown)."""

    before: dict[str, str | None]
    after: dict[str, str | None]
    expressions_before: dict[str, str]      # lower-cased name -> expression SQL
    expressions_after: dict[str, str]


def output_columns(head: Marked, base: Marked, parser: Parser,
                   head_upstream: dict[str, Any], base_upstream: dict[str, Any]
                   ) -> StandinSchemas | None:
    """The output columns of both revisions of a model that cannot be rendered, or None
    when they are not certain.

    Certain means: both renders met the same unknown calls, in the same number, and
    nothing unknown steered either render (no loop over, or test of, something unknown);
    the base's fillers make both revisions parse; every output column is named by the
    query and none is a stand-in (a stand-in in a select-item position without an alias,
    a `*` over a stand-in query or a relation of unknown columns: no verdict); and a
    stand-in filled with nothing or a query would not be a column if it were a word.
    ``*_upstream``: identifier -> columns (None: unknown) of what each revision reads."""
    if head.flow or base.flow or head.unknown != base.unknown or \
            len(head.marks) != len(base.marks):
        return None
    choice = choose(base, parser)
    if choice is None or parser.error(head.fill(choice)[0]) is not None:
        return None
    before = _certain_columns(base, choice, parser, base_upstream)
    after = _certain_columns(head, choice, parser, head_upstream) if before else None
    if before is None or after is None:
        return None
    return StandinSchemas({c: None for c in before[0]}, {c: None for c in after[0]},
                          before[1], after[1])


def _certain_columns(marked: Marked, choice: list[int], parser: Parser,
                     upstream: dict[str, Any]) -> tuple[list[str], dict[str, str]] | None:
    """(output column names, expressions) of ``marked`` filled by ``choice``, or None."""
    sql, _where = marked.fill(choice)
    found = _names(sql, parser, upstream)
    if found is None:
        return None
    names = [n for n, _e in found]
    for k, c in enumerate(choice):
        if c == 0:
            continue      # a word already: a select item of its own would be named by it
        trial = list(choice)
        trial[k] = 0
        other, _w = marked.fill(trial)
        if parser.error(other) is not None:
            continue
        again = _names(other, parser, upstream, any_shape=True)
        if again is None or [n for n, _e in again] != names:
            return None   # as a word it would be (or change) an output column
    exprs = {n.lower(): e for n, e in found if STANDIN not in e.lower()}
    return names, exprs


def _names(sql: str, parser: Parser, upstream: dict[str, Any], any_shape: bool = False
           ) -> list[tuple[str, str]] | None:
    """(name, expression) of each output column of ``sql``, None when not all are known
    (or one is a stand-in); in a guessed dialect every common dialect that reads all of
    them must read the same names. ``any_shape``: a stand-in column is returned too."""
    from dbt_bulwark.sql.columns import infer_output_columns

    dialects = [parser.dialect]
    if parser.how == "guess":
        from dbt_bulwark.sql.sql_verdicts import GUESS_COLUMN_DIALECTS

        dialects += [d for d in GUESS_COLUMN_DIALECTS if d != parser.dialect]
    first: list[tuple[str, str]] | None = None
    for i, d in enumerate(dialects):
        out = infer_output_columns(sql, d, upstream, types=False)
        if not out.complete or not out.columns:
            if i == 0:
                return None
            continue
        cols = [(c.name, c.expression_sql or "") for c in out.columns]
        if not any_shape and any(STANDIN in n.lower() for n, _e in cols):
            return None
        names = [n.lower() for n, _e in cols]
        if len(set(names)) != len(names):
            return None
        if first is None:
            first = cols
        elif [n.lower() for n, _e in first] != names:
            return None
    return first


def _by_ident(relations: dict[str, str], columns: dict[str, Any]) -> dict[str, Any]:
    return {ident: columns[uid] for ident, uid in relations.items() if uid in columns}


def _unknown(sql: str, parser: Parser, upstream: dict[str, Any]) -> list[Any]:
    """The unknown columns of ``sql`` besides stand-ins (cached with the parser's verdicts:
    the base's are asked again on every commit)."""
    if not upstream:
        return []
    if parser.cache is None:
        return _unknown_uncached(sql, parser, upstream)
    from dbt_bulwark.cache import content_hash

    key = ("standin-unknown", parser.dialect, parser.how, content_hash(sql),
           content_hash(repr(sorted((k, None if v is None else sorted(v.items()))
                                    for k, v in upstream.items()))))
    hit = parser.cache.get(key)
    if isinstance(hit, list):
        return hit
    found = _unknown_uncached(sql, parser, upstream)
    parser.cache.put(key, found)
    return found


def _unknown_uncached(sql: str, parser: Parser, upstream: dict[str, Any]) -> list[Any]:
    from dbt_bulwark.sql.columns import find_unknown_columns

    found = [u for u in find_unknown_columns(sql, parser.dialect, upstream)
             if STANDIN not in u.name.lower()]
    if found and parser.how == "guess":
        from dbt_bulwark.sql.sql_verdicts import GUESS_COLUMN_DIALECTS

        for other in GUESS_COLUMN_DIALECTS:
            if other == parser.dialect:
                continue
            again = {(u.line, u.col, u.name) for u in find_unknown_columns(sql, other, upstream)}
            found = [u for u in found if (u.line, u.col, u.name) in again]
            if not found:
                break
    return found


def _syntax_message(sql: str, parser: Parser) -> tuple[str, int]:
    from dbt_bulwark.sql.sql_verdicts import sql_syntax_error

    verdict = sql_syntax_error(sql, parser.dialect, parser.how)
    if verdict is not None:
        return verdict.message, verdict.offset
    off = parser.error(sql)
    return "does not parse", off or 0


# ----------------------------------------------------------------------------- the rule

UNTRUSTED = frozenset({"BLK103", "BLK104"})   # "not checked": unknown calls, warehouse calls


def judge(ctx: Any, project: Any, run: Any, policy: Any, findings: list[Any]) -> list[Any]:
    """fast-compile's head findings plus what the stand-in renders of the changed,
    otherwise unchecked models say against the base (BLK130, BLK140)."""
    from dbt_bulwark.findings import Finding

    erroneous = {f.node for f in findings if f.node and f.severity == "error"}
    reasons: dict[str, str] = {}
    for f in findings:
        # (fast-compile checks the targets and the children of those whose SQL changed)
        if f.code in UNTRUSTED and f.severity == "info" and f.node and \
                f.node not in erroneous:
            node = project.nodes.get(f.node)
            if node is not None and node.resource_type == "model" and node.language == "sql" \
                    and f.path == node.repo_path:
                why = f.message.split(": ", 1)[-1].replace(" (run dbt deps)", "")
                reasons.setdefault(f.node, why)
    if not reasons:
        return findings
    changed_files = None if ctx.all_files else set(ctx.files)

    def paths(uid: str) -> set[str]:
        res = project.get(uid)
        if res is None:
            return set()
        return {p for p in (getattr(res, "repo_path", ""), getattr(res, "patch_path", ""))
                if p}

    facts = run.facts()
    macros_changed = bool(facts.macros_hash) and facts.macros_hash != project.macros_hash

    def changed(uid: str) -> bool:
        node = project.nodes.get(uid)
        return node is not None and facts.checksums.get(uid) != node.checksum

    todo: list[tuple[str, bool]] = []     # (uid, its own SQL changed)
    for uid in sorted(reasons):
        if uid not in facts.nodes:
            continue   # new at the head: nothing to compare with
        node = project.nodes[uid]
        if changed_files is not None:
            touched = set().union(*(paths(p) for p in [uid, *node.depends_on]))
            if not touched & changed_files:
                continue
        own = macros_changed or changed(uid)
        if own or any(changed(p) for p in node.depends_on):
            todo.append((uid, own))
    if not todo:
        return findings
    base_project = run.project()
    fc = policy.fast_compile if policy is not None else None
    check_sql = fc is None or fc.check_sql
    check_columns = fc is None or fc.check_columns
    trust = fc is not None and fc.trust_source_columns
    from dbt_bulwark.sql.schema import project_dialect

    dialect, how = project_dialect(project, (policy.dialect if policy is not None else None) or None)
    parser = Parser(dialect, how, project.cache)
    resolvers: dict[str, Any] = {}

    def upstream(which: str, proj: Any) -> Callable[[Iterable[str]], dict[str, Any] | None]:
        def get(uids: Iterable[str]) -> dict[str, Any] | None:
            from dbt_bulwark.checks.fast_compile import _resolver

            if which not in resolvers:
                resolvers[which] = _resolver(proj, dialect, trust)
            out: dict[str, Any] = {}
            for u in uids:
                cols = resolvers[which].relation_columns(u)
                if cols is None:
                    return None
                out[u] = cols
            return out
        return get

    out = list(findings)
    for uid, syntax_changed in todo:
        node = project.nodes[uid]
        base_node = base_project.nodes.get(uid)
        if base_node is None or not base_node.raw_code or not node.raw_code:
            continue
        try:
            head = marked_render(project, node)
            base = marked_render(base_project, base_node)
            if head is None or base is None:
                continue
            verdict = compare(head, base, parser, check_columns,
                              upstream("head", project), upstream("base", base_project),
                              syntax_changed and check_sql)
        except Exception:  # noqa: BLE001 - an extra opinion: never a crash of the hook
            continue
        label = run.base.label
        why = reasons[uid]
        if verdict.syntax is not None:
            line, col, message = verdict.syntax
            out.append(Finding(
                node.repo_path, line, col, "BLK130",
                f"SQL syntax error: {message} (rendered with stand-ins for what bulwark cannot "
                f"know: {why}; the SQL parsed at the base revision {label})",
                hint="fix the SQL, or compare with the base version of the file", node=uid))
        for line, col, name in verdict.columns or []:
            out.append(Finding(
                node.repo_path, line, col, "BLK140",
                f"column '{name}' is not provided by any relation this query reads (it was at "
                f"the base revision {label}; the rest of this model is not checked: {why})",
                hint="keep the column upstream, or stop using it here", node=uid))
    return out
