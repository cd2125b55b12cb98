"""SQL syntax verdicts on rendered SQL: DuckDB's own parser where the dialect is DuckDB,
else two sqlglot opinions (any dialect parsing, when the dialect is only a guess); a
lexical pre-check, and a one-token repair that names the error's real place. Also the
set operations whose branches certainly have different numbers of columns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dbt_bulwark.spelling import edit_distance

# sqlglot dialects tried when the project's dialect is only a guess: any one parsing = valid
GUESS_DIALECTS = ("duckdb", "snowflake", "bigquery", "postgres", "databricks", "redshift",
                  "tsql", "trino")
# dialects that must all agree on an unknown column when the project's dialect is a guess
# (the guessed one among them: DuckDB, or the adapter of a profiles.yml checked in below
# the project)
GUESS_COLUMN_DIALECTS = ("duckdb", "snowflake", "bigquery", "postgres")
_BACKSLASH_DIALECTS = {"bigquery", "snowflake", "mysql", "databricks", "spark", "hive",
                       "clickhouse", "doris", "starrocks", "singlestore"}


@dataclass
class SyntaxVerdict:
    offset: int          # in the rendered SQL
    message: str
    certain: bool        # False: at most an info ("not checked")


_DUCK: dict[str, Any] = {}   # one in-memory DuckDB connection per process


def _duckdb_parse(sql: str) -> tuple[int, str] | None | bool:
    """DuckDB's own parser: (offset, message) on a syntax error, None when it parses,
    False when DuckDB is not installed or cannot judge (non-SELECT statements...)."""
    try:
        # the engine alone (duckdb >= 1.4): `connect`, `execute` and `Error` are all this
        # needs, and `import duckdb` (its Python layer) costs four times as much, on
        # every commit that changes a model of a DuckDB project
        import _duckdb as duckdb
    except ImportError:
        try:
            import duckdb  # type: ignore[no-redef]
        except ImportError:
            return False
    import json

    con = _DUCK.get("con")
    try:
        if con is None:
            con = _DUCK["con"] = duckdb.connect(":memory:")
        row = con.execute("select json_serialize_sql(?)", [sql]).fetchone()
        res = json.loads(row[0]) if row else {}
    except (duckdb.Error, ValueError):   # DuckDB cannot serialise it: not judged here
        return False
    if not res.get("error"):
        return None
    if res.get("error_type") != "parser":
        return False
    pos = res.get("position")
    try:
        byte_pos = int(pos) if pos is not None else len(sql.encode())
    except ValueError:
        byte_pos = 0
    offset = len(sql.encode("utf-8")[:byte_pos].decode("utf-8", "ignore"))
    return offset, str(res.get("error_message") or "syntax error")


def _sqlglot_parse(sql: str, dialect: str) -> tuple[int, str] | None:
    """(offset, message) when sqlglot cannot parse ``sql`` in ``dialect``, else None."""
    import sqlglot
    from sqlglot import errors

    from dbt_bulwark.sql.compiler import line_col_to_offset

    try:
        statements = sqlglot.parse(sql, read=dialect)
    except errors.ParseError as exc:
        from dbt_bulwark.sql.columns import parse_error_parts

        desc, line, col, highlight = parse_error_parts(exc)
        line, col = line or 1, col or 1
        offset = line_col_to_offset(sql, line, col)
        if highlight and offset >= len(highlight) - 1:
            offset = max(0, offset - len(highlight) + 1)
        return offset, desc
    except Exception as exc:  # noqa: BLE001 - tokenizer errors and anything else
        return 0, str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
    from dbt_bulwark.sql.columns import remember_parse

    remember_parse(sql, dialect, statements)   # the column checks read the same text
    return None


_LEX_SPECIAL = re.compile(r"[-#/$'\"`()]")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_]\w*)?\$")
_QUOTE_OR_BACKSLASH = {q: re.compile(re.escape(q) + r"|\\") for q in "'\"`"}


def lexical_problem(sql: str, backslash_escapes: bool, backticks: bool,
                    hash_comments: bool) -> tuple[int, str] | None:
    """Unterminated strings/comments and unbalanced parentheses: errors in any dialect.

    Jumps from one character that can matter (comment, string and parenthesis marks) to
    the next: linear, with the per-character work done by the regex engine."""
    i, n = 0, len(sql)
    stack: list[int] = []
    special = _LEX_SPECIAL
    while i < n:
        m = special.search(sql, i)
        if m is None:
            break
        i = m.start()
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i) or (hash_comments and ch == "#"):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                return i, "unterminated /* comment"
            i = end + 2
            continue
        if ch == "$":
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                end = sql.find(tag.group(0), i + len(tag.group(0)))
                if end < 0:
                    return i, "unterminated $$ string"
                i = end + len(tag.group(0))
                continue
        if ch in "'\"" or (backticks and ch == "`"):
            j = i + 1
            closer = _QUOTE_OR_BACKSLASH[ch] if backslash_escapes else None
            while j < n:
                if closer is not None:
                    hit = closer.search(sql, j)
                    k = hit.start() if hit is not None else n
                else:
                    k = sql.find(ch, j)
                    k = n if k < 0 else k
                if k >= n:
                    j = n
                    break
                if sql[k] == "\\":    # only found with backslash escapes
                    j = k + 2
                    continue
                if k + 1 < n and sql[k + 1] == ch:
                    j = k + 2
                    continue
                j = k
                break
            if j >= n:
                kind = "string" if ch == "'" else "quoted identifier"
                return i, f"unterminated {kind} (opening {ch} has no closing {ch})"
            i = j + 1
            continue
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                return i, "unbalanced ')' (no matching '(')"
            stack.pop()
        i += 1
    if stack:
        return stack[-1], "unclosed '(' (no matching ')')"
    return None


def _lexical(sql: str, dialects: Iterable[str]) -> tuple[int, str] | None:
    """A lexical problem only when every candidate dialect's rules see one."""
    found: tuple[int, str] | None = None
    for d in dialects:
        problem = lexical_problem(sql, d in _BACKSLASH_DIALECTS,
                                  d in ("bigquery", "databricks", "spark", "hive", "mysql",
                                        "clickhouse", "doris", "starrocks", "singlestore"),
                                  d in ("bigquery", "mysql"))
        if problem is None:
            return None
        found = found or problem
    return found


_GLUED = re.compile(r"(?<=[\w$])(?=__(?:ref|src|missing)__)")


def sql_syntax_error(sql: str, dialect: str, how: str) -> SyntaxVerdict | None:
    """:func:`_sql_syntax_error` on ``sql`` with a space before every relation placeholder
    glued to a word (``join{{ ref('x') }}`` is valid when dbt quotes the relation name);
    the verdict's offset is in ``sql``."""
    inserts = [m.start() for m in _GLUED.finditer(sql)]
    if not inserts:
        return _sql_syntax_error(sql, dialect, how)
    padded = _GLUED.sub(" ", sql)
    verdict = _sql_syntax_error(padded, dialect, how)
    if verdict is not None:
        shift = 0
        for k, pos in enumerate(inserts):   # padded offset of insert k is pos + k
            if pos + k < verdict.offset:
                shift = k + 1
        verdict.offset -= shift
    return verdict


def _sql_syntax_error(sql: str, dialect: str, how: str) -> SyntaxVerdict | None:
    """Is ``sql`` syntactically invalid? ``how`` is how the dialect was chosen.

    One verdict everywhere (the hook's environment, the CLI, the tests): ``duckdb`` is a
    runtime dependency, and its parser is used for DuckDB projects only.

    * DuckDB projects (dialect ``duckdb`` from the profile or bulwark.yml): DuckDB's own
      parser decides.
    * Any other dialect, or a guessed one: sqlglot must fail (in *every* common dialect
      when the dialect is a guess), and the error must be one no dialect accepts: a
      lexical problem (unterminated string/comment, unbalanced parentheses), or a fault a
      one-token repair cures (a misspelled keyword such as ``selct``, a missing comma
      between select items). Anything else is only "not checked" (info): sqlglot's
      dialect coverage is not the warehouse's grammar.
    """
    if not sql.strip():
        return None
    if dialect == "duckdb" and how != "guess":
        duck = _duckdb_parse(sql)
        if duck is None:
            return None
        if isinstance(duck, tuple):
            return SyntaxVerdict(duck[0], duck[1], True)
        # DuckDB cannot judge (not a parser error): fall through to the rules below
    dialects = GUESS_DIALECTS if how == "guess" else (dialect,)
    lex = _lexical(sql, dialects)
    if lex is not None:   # no dialect reads an unclosed '(' or string (sqlglot may)
        return SyntaxVerdict(lex[0], lex[1], True)
    doubled = _DOUBLED.search(_STRINGS.sub(lambda m: " " * len(m.group(0)), sql))
    if doubled is not None:   # `from from`, `as as`: reserved everywhere, never valid
        return SyntaxVerdict(doubled.start(2), f"'{doubled.group(2)}' written twice", True)
    first: tuple[int, str] | None = None
    for d in dialects:
        err = _sqlglot_parse(sql, d)
        if err is None:
            return None
        first = first or err
    assert first is not None
    repaired = _one_token_repair(sql, first[0], dialects)
    if repaired is not None:
        return SyntaxVerdict(repaired[0], repaired[1], True)
    return SyntaxVerdict(first[0], first[1], False)


_KEYWORDS = ("select", "from", "where", "group", "order", "having", "union", "join",
             "with", "limit", "qualify", "inner", "left", "right", "outer", "cross",
             "distinct", "partition", "between", "case", "when", "then", "else", "end",
             "cast", "over", "intersect", "except", "lateral", "as", "on", "by", "and",
             "or", "not", "in", "is", "null")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|--[^\n]*|/\*.*?\*/", re.S)
_DOUBLED = re.compile(r"(?<![\w.$])((select|from|where|as|join|on|by)\s+)(\2)(?![\w$])",
                      re.I)
_SELECT_CLAUSE = re.compile(r"\b(select|from|where|join|group|order|having|qualify|limit|"
                            r"union|on|window)\b", re.I)


def _one_token_repair(sql: str, offset: int, dialects: Iterable[str]
                      ) -> tuple[int, str] | None:
    """(offset, message) when one small edit near ``offset`` makes ``sql`` parse in every
    candidate dialect: a word one or two letters away from a SQL keyword replaced by it
    (``selct`` -> ``select``), or a comma inserted between two select items. Such SQL
    fails in any dialect; sqlglot's other failures may be valid SQL it does not know."""
    line_start = sql.rfind("\n", 0, offset) + 1
    prev_nl = sql.rfind("\n", 0, max(0, line_start - 1)) + 1
    line_end = sql.find("\n", offset)
    line_end = len(sql) if line_end < 0 else line_end
    window = range(prev_nl, line_end)   # the error's line and the one before

    def parses(candidate: str) -> bool:
        return all(_sqlglot_parse(candidate, d) is None for d in dialects)

    words = [m for m in _WORD.finditer(sql) if m.start() in window]
    # a misspelled keyword
    for m in words:
        word = m.group(0).lower()
        if word in _KEYWORDS or len(word) < 3:
            continue
        for kw in (k for k in _KEYWORDS if len(k) >= 4):
            if edit_distance(word, kw, 2) <= (1 if len(kw) < 6 else 2) and (
                    parses(sql[:m.start()] + kw + sql[m.end():])   # (a Jinja loop repeats it)
                    or parses(re.sub(rf"\b{re.escape(m.group(0))}\b", kw, sql))):
                return m.start(), f"'{m.group(0)}' is not a SQL keyword (did you mean " \
                                  f"{kw.upper()}?)"
    # a keyword written twice (`as as`, `from from`)
    for a, b in zip(words, words[1:], strict=False):
        if a.group(0).lower() == b.group(0).lower() in _KEYWORDS and \
                not sql[a.end():b.start()].strip() and (
                    parses(sql[:a.end()] + sql[b.end():]) or parses(re.sub(
                        rf"\b({re.escape(a.group(0))})\s+\1\b", r"\1", sql, flags=re.I))):
            return b.start(), f"'{b.group(0)}' written twice"
    # a missing comma between two select items: insert one before a word of the window
    for m in words[:12]:
        before = sql[:m.start()].rstrip()
        if not before or before[-1] in ",(" or m.group(0).lower() in _KEYWORDS:
            continue
        clause = _SELECT_CLAUSE.findall(sql[:m.start()])
        if not clause or clause[-1].lower() != "select":
            continue   # only between the items of a select list
        if parses(before + ", " + sql[m.start():]):
            return m.start(), f"missing comma before '{m.group(0)}'"
    return None


def set_width_mismatches(sql: str, dialect: str, how: str) -> list[tuple[int, str]]:
    """(offset in ``sql``, message) of each set operation whose branches certainly have
    different numbers of columns. With a guessed dialect, only what sqlglot reads the same
    way in every common dialect that parses the SQL."""
    from dbt_bulwark.sql.columns import set_operations, set_width_mismatch

    def mismatches(d: str) -> list[tuple[int, str]] | None:
        ops = set_operations(sql, d, texts=False)
        if ops is None:
            return None
        out: list[tuple[int, str]] = []
        for op in ops.operations:
            bad = set_width_mismatch(op)
            if bad is None:
                continue
            i, width, first = bad
            j = next(k for k, b in enumerate(op.branches) if b.width is not None)
            out.append((op.branches[i].start or 0,
                        f"{op.op} branches have different numbers of columns: branch {i + 1} "
                        f"has {width}, branch {j + 1} has {first}"))
        return out

    found = mismatches(dialect)
    if not found:
        return []
    if how == "guess":
        for other in ("snowflake", "bigquery", "postgres"):
            again = mismatches(other)
            if again is not None and again != found:
                return []
    return found
