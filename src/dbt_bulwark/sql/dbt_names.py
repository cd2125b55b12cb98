"""Names dbt itself provides to Jinja (context members and global-project macros).

Generated from dbt-core and its adapters by ``scripts/gen_dbt_names.py`` into
:mod:`dbt_bulwark.sql.dbt_names_data` (tests/test_dbt_names_oracle.py compares it with the
installed dbt-core), plus the few names Jinja itself provides. Used by fast-compile to
tell "a dbt built-in bulwark does not emulate" (the SQL is then not checked) from
"an unknown macro" (a finding).
"""

from __future__ import annotations

import re

from dbt_bulwark.sql import dbt_names_data as _data

# Jinja's own names, the `dbt` namespace, and names dbt adds outside its context classes
JINJA_NAMES: frozenset[str] = frozenset(["builtins", "caller", "varargs", "kwargs", "loop", "range", "dict", "list", "namespace", "lipsum", "cycler", "joiner", "true", "false", "none", "True", "False", "None", "dbt", "debug"])

CONTEXT_MEMBERS: frozenset[str] = _data.CONTEXT_MEMBERS | JINJA_NAMES

_PREFIX = re.compile(r"^(?:default|" + "|".join(sorted(_data.ADAPTER_MACROS)) + r")__")


def _callable_names(names: frozenset[str]) -> set[str]:
    # `default__x` / `<adapter>__x` are reached through the dispatching `x`; both are names
    out = set(names)
    out.update(_PREFIX.sub("", n) for n in names)
    return out


# macros of dbt's global project and of every adapter's own project, with and without
# their dispatch prefixes
GLOBAL_MACROS: frozenset[str] = frozenset(
    _callable_names(_data.GLOBAL_PROJECT_MACROS).union(
        *(_callable_names(v) for v in _data.ADAPTER_MACROS.values())))

BUILTIN_NAMES: frozenset[str] = CONTEXT_MEMBERS | GLOBAL_MACROS
