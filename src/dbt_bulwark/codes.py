"""The catalogue of finding codes: the doc page of each code and a one-line description.

Used for SARIF rule metadata (``--format sarif``), for validating ``select:`` /
``ignore:`` / ``per_path_ignores:`` values, for the code families each hook emits
(unused-suppression reports) and for what ``--fix`` can repair. The hook pages
under ``docs/hooks/`` are the reference; ``tests/test_adoption.py`` keeps both in step.
"""

from __future__ import annotations

import re
from typing import Any

# the repository the docs are published from (helpUri of SARIF rules)
REPO_URL = "https://github.com/your-org/dbt-bulwark"

# code -> (doc page under docs/hooks/, short description)
CODES: dict[str, tuple[str, str]] = {
    "BLK001": ("common", "invalid YAML"),
    "BLK002": ("common", "a file cannot be read"),
    "BLK003": ("common", "a file is not valid UTF-8 (dbt reads UTF-8)"),
    "BLK004": ("common", "a file is too large to check"),
    "BLK005": ("common", "YAML whose aliases expand past 100,000 nodes or refer to an ancestor"),
    "BLK009": ("common", "a properties file that no longer loads leaves its models unchecked against the base"),
    "BLK010": ("common", "dbt_project.yml is not a mapping or has no valid name"),
    "BLK011": ("common", "dbt_project.yml is invalid"),
    "BLK012": ("common", "Jinja in dbt_project.yml cannot be rendered"),
    "BLK013": ("common", "a dbt_project.yml key with a type dbt's project schema rejects"),
    "BLK020": ("common", "dbt cannot parse this file (Jinja)"),
    "BLK021": ("common", "Jinja refused by dbt's sandbox"),
    "BLK022": ("common", "a template rendered longer than the limit"),
    "BLK030": ("common", "a properties file or one of its sections has the wrong shape"),
    "BLK031": ("common", "a property set both at top level and under config:"),
    "BLK032": ("common", "columns: is not a list"),
    "BLK033": ("common", "an entry without name"),
    "BLK034": ("common", "a resource described twice in YAML"),
    "BLK035": ("common", "a model version without SQL file"),
    "BLK036": ("common", "two enabled nodes with the same name"),
    "BLK037": ("common", "a resource described in YAML has no file"),
    "BLK038": ("common", "a properties value dbt's schema rejects"),
    "BLK040": ("common", "a `bulwark: ignore` suppression without codes"),
    "BLK041": ("common", "a `bulwark: ignore` suppression that suppresses nothing"),
    "BLK101": ("fast-compile", 'Jinja syntax error in a macro file (dbt loads no macro of it)'),
    "BLK102": ("fast-compile", 'call to a macro that is in no project/installed package/dbt; with "did you mean"'),
    "BLK103": ("fast-compile", 'not checked: a package the node uses (or may ref/source from) is declared but not installed'),
    "BLK104": ("fast-compile", 'SQL not checked: uses a warehouse call (run_query, statement, adapter.get_columns_in_relation...) or a dbt built-in bulwark does not emulate'),
    "BLK105": ("fast-compile", "not checked: the node does not render in compile mode with bulwark's stand-ins"),
    "BLK110": ("fast-compile", 'ref() to no model/seed/snapshot (did you mean ...)'),
    "BLK111": ("fast-compile", 'ref() to a disabled node'),
    "BLK112": ("fast-compile", 'ref(..., v=N) to a version that does not exist'),
    "BLK113": ("fast-compile", "two-argument ref('pkg', 'm') to a package that does not exist"),
    "BLK114": ("fast-compile", 'source() to an undeclared source'),
    "BLK115": ("fast-compile", 'source() to a table the source does not declare'),
    "BLK116": ("fast-compile", 'ref cycle (the cycle is shown)'),
    "BLK117": ("fast-compile", 'two nodes build the same relation (same schema + alias)'),
    "BLK118": ("fast-compile", "a resource removed by the change is still used"),
    "BLK120": ("fast-compile", "var('x') without default, not in vars: nor --vars (only needed at compile time; a parse-time use is dbt's own failure and dbt returns None there)"),
    "BLK121": ("fast-compile", "env_var('X') without default and not set (compile-time use; parse-time use is BLK020)"),
    "BLK130": ("fast-compile", 'SQL syntax error, at the .sql line/column (mapped back through the Jinja)'),
    "BLK131": ("fast-compile", 'SQL not checked: the parser could not read it but no second opinion confirms an error'),
    "BLK132": ("fast-compile", 'the branches of a UNION / INTERSECT / EXCEPT have different numbers of columns (certain at the head, or, for a branch of unknown width such as a.*, because one branch changed its number of columns since the base revision while that one did not)'),
    "BLK140": ("fast-compile", 'a column the query uses that no relation it reads provides (closest name as hint)'),
    "BLK150": ("fast-compile", 'a known properties key has the wrong type (description a list, data_tests not a list, config: enabled not a bool, tags not string/list...)'),
    "BLK151": ("fast-compile", 'an element of models:/columns:/versions:/tables:... is not a mapping'),
    "BLK152": ("fast-compile", 'a column without name, a version without v'),
    "BLK153": ("fast-compile", 'latest_version is not one of the declared versions'),
    "BLK199": ("fast-compile", 'internal error on one node (the others are still checked)'),
    "BLK201": ("check-contracts", 'model selected by contracts.select has no enforced contract'),
    "BLK202": ("check-contracts", 'contract on a Python model, ephemeral model or materialized view'),
    "BLK203": ("check-contracts", 'incremental contracted model with on_schema_change other than append_new_columns/fail'),
    "BLK204": ("check-contracts", 'contract enforced but no columns declared (dbt build fails)'),
    "BLK205": ("check-contracts", 'contracted column without data_type (dbt build fails)'),
    "BLK206": ("check-contracts", 'data_type the dialect does not accept'),
    "BLK207": ("check-contracts", 'constraints dbt will not apply (view or other non-table materialization; model without contract)'),
    "BLK208": ("check-contracts", 'invalid constraint type, several column-level primary keys, or primary key at model and column level (dbt parse fails)'),
    "BLK209": ("check-contracts", 'contracts.require_primary_key: selected model without a primary key'),
    "BLK210": ("check-contracts", "the SQL produces a column the contract does not declare (at the model's YAML entry)"),
    "BLK211": ("check-contracts", "a declared column the SQL does not produce (at the column's YAML line)"),
    "BLK212": ("check-contracts", "declared data_type differs from the SQL's type (base types)"),
    "BLK213": ("check-contracts", "the SQL's columns cannot be inferred; agreement left to dbt"),
    "BLK214": ("check-contracts", "contracted model whose SQL is empty"),
    "BLK220": ("check-contracts", '--fix could not edit a properties file (alias/anchor/merge key in the way, unreadable file)'),
    "BLK221": ("check-contracts", '--fix left a model as it was (types not knowable, declared columns the SQL lacks, contract set in SQL config(), unknown dialect)'),
    "BLK222": ("check-contracts", "--fix left a model alone: a properties file that could describe it failed to load"),
    "BLK301": ("check-critical-tags", 'a critical (or locked) model lacks a tag of critical.tags; says so when the tag was there at the base revision'),
    "BLK302": ("check-critical-tags", 'a critical model has no description'),
    "BLK303": ("check-critical-tags", 'a critical model has no owner: no meta.owner (top-level meta, config.meta, SQL config(meta=...) or dbt_project.yml +meta) and no group whose YAML has an owner with name or email'),
    "BLK304": ("check-critical-tags", 'a critical model has no tested primary key'),
    "BLK310": ("check-critical-tags", 'a critical/locked tag the model had at the base revision is gone, and the model is no longer critical now (if it still is, BLK301 reports it)'),
    "BLK311": ("check-critical-tags", 'a model critical or locked at the base revision is disabled (points at the line that sets enabled: false) or was deleted/renamed (points at the old path)'),
    "BLK312": ("check-critical-tags", 'generic tests the model had at the base revision were removed (or disabled)'),
    "BLK320": ("check-critical-tags", "--fix could not write a properties file safely"),
    "BLK321": ("check-critical-tags", "--fix wrote the tags but the reloaded project does not carry them"),
    "BLK401": ("check-schema-diff", 'column removed'),
    "BLK402": ("check-schema-diff", 'column renamed (same expression under a new name)'),
    "BLK403": ("check-schema-diff", 'base type changed (dbt >= 1.11: varchar(3)→varchar(10) is not a change)'),
    "BLK404": ("check-schema-diff", 'contract enforcement turned off'),
    "BLK405": ("check-schema-diff", 'enforced constraint removed (column or model level; per adapter support, table/incremental only)'),
    "BLK406": ("check-schema-diff", 'materialization changed away from table/incremental while constraints exist'),
    "BLK407": ("check-schema-diff", 'model deleted or renamed'),
    "BLK408": ("check-schema-diff", 'model disabled'),
    "BLK409": ("check-schema-diff", 'model version removed'),
    "BLK410": ("check-schema-diff", 'a downstream model / snapshot / singular test / generic test / unit test / exposure uses the removed, renamed or retyped column (certain to break when it selects a removed column by name; * passthroughs are reported as info and followed to grandchildren)'),
    "BLK411": ("check-schema-diff", 'a downstream ref() / exposure / unit test points at a removed model or version'),
    "BLK420": ("check-schema-diff", 'column added'),
    "BLK421": ("check-schema-diff", 'contract enforcement turned on'),
    "BLK422": ("check-schema-diff", 'constraint added'),
    "BLK423": ("check-schema-diff", 'new model or version'),
    "BLK430": ("check-schema-diff", 'logic changed, output schema unchanged'),
    "BLK431": ("check-schema-diff", 'the output schema could not be determined at one side (Jinja bulwark cannot render, unaliased expression, select * from a relation with unknown columns)'),
    "BLK432": ("check-schema-diff", 'a downstream node was not analysed for uses of the removed, renamed or retyped column (it does not render, or its SQL cannot be parsed): its uses are unknown, never taken as "no use"'),
    "BLK510": ("ci", 'the database rejected a model in dbt build --empty (compiled SQL, or the enforced contract)'),
    "BLK511": ("ci", 'a data test errored or failed in dbt build --empty (on zero rows)'),
    "BLK512": ("ci", 'a unit test failed'),
    "BLK513": ("ci", "dbt build --empty cannot build the model on this adapter (alias right after ref())"),
    "BLK520": ("ci", 'an ERROR-severity data test failed (data-quality gate)'),
    "BLK521": ("ci", 'a WARN-severity data test failed'),
    "BLK522": ("ci", 'a selected model failed to build for the data-quality gate'),
    "BLK523": ("ci", 'a dbt step could not run at all (project error)'),
    "BLK530": ("ci", 'a column was added, removed or retyped since the baseline'),
    "BLK531": ("ci", 'row count beyond row_count_tolerance'),
    "BLK532": ("ci", 'a column statistic beyond tolerance'),
    "BLK533": ("ci", 'same stats, different rows (content hash)'),
    "BLK534": ("ci", 'a selected model has no baseline'),
    "BLK535": ("ci", 'a baseline file cannot be read'),
    "BLK536": ("ci", 'a baseline file for a model that no longer exists'),
    "BLK537": ("ci", 'the model failed to build or its stats query failed'),
    "BLK538": ("ci", 'the model cannot be built with data here (source-fed on embedded DuckDB)'),
}

# codes ``--fix`` of their hook repairs (counted in the text summary)
FIXABLE = frozenset({"BLK201", "BLK204", "BLK205", "BLK210", "BLK301"})

# hook / ci layer -> the code families it emits (BLK0xx: the loader, with every hook)
HOOK_FAMILIES: dict[str, tuple[str, ...]] = {
    "fast-compile": ("BLK1",),
    "check-contracts": ("BLK2",),
    "contracts": ("BLK2",),
    "check-critical-tags": ("BLK3",),
    "critical-tags": ("BLK3",),
    "check-schema-diff": ("BLK4",),
    "schema-diff": ("BLK4",),
}

_CODE_RE = re.compile(r"^BLK\d{0,3}$")


def matches(code: str, patterns: Any) -> bool:
    """``code`` is one of ``patterns`` or starts with one (prefixes: ``BLK1``, ``BLK14``)."""
    return any(code.startswith(p) for p in patterns)


def check_code_list(value: Any) -> list[str]:
    """A list of codes / prefixes (a comma- or space-separated string is accepted);
    ValueError naming what is allowed."""
    items = re.split(r"[,\s]+", value) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("must be a list of codes, e.g. [BLK131, BLK2]")
    out: list[str] = []
    for item in items:
        code = str(item).strip().upper()
        if not code:
            continue
        if not _CODE_RE.match(code) or (len(code) == 6 and code not in CODES) or \
                not any(c.startswith(code) for c in CODES):
            raise ValueError(f"unknown code {item!r}; allowed: a code such as BLK140 or a "
                             "prefix such as BLK1 (codes: docs/hooks/*.md)")
        out.append(code)
    return out


def help_uri(code: str, ref: str | None = None) -> str:
    """The doc page of ``code`` on the repository, at ``ref`` (default: this release's tag)."""
    from dbt_bulwark import __version__

    page = CODES.get(code, ("common", ""))[0]
    return f"{REPO_URL}/blob/{ref or 'v' + __version__}/docs/hooks/{page}.md#{code.lower()}"
