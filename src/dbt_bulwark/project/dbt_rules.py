"""Which dbt version's rules a static hook applies (no dbt import).

The static hooks follow dbt 1.11 by default. Where dbt's behaviour changed between
1.9 and 1.11 in a way a hook depends on, the hook asks this module which rule holds
for the project:

* the policy key ``dbt_version`` (``"1.9"``), when set, wins;
* else the project's ``require-dbt-version`` in ``dbt_project.yml``: the *lowest*
  version it admits (``">=1.9.0"`` / ``[">=1.9.0", "<2.0.0"]`` -> 1.9), since the
  project must hold under the oldest dbt it says it runs on;
* else (or beyond the newest rules we know) :data:`DEFAULT`.

The rules (documented in each hook's page):

==============================  ==========  =============================================
rule                            since dbt   effect
==============================  ==========  =============================================
generic test ``arguments:``     1.10        kwargs nested under ``arguments:`` are the
                                            test's arguments (behaviour flag
                                            ``require_generic_test_arguments_property``,
                                            default on); before, ``arguments`` is one
                                            ordinary keyword argument (test name and
                                            hash change, and the macro call fails)
contract type comparison        1.11        a contracted column's type change is
                                            breaking only when the base type (lower-
                                            cased, cut at ``(``) differs; before, any
                                            change of the type text is breaking
``data_tests`` vs ``tests``     (1.8)       both keys are read by every version 1.9-1.11:
                                            no version rule
==============================  ==========  =============================================
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT = (1, 11)          # the newest dbt whose rules the hooks know
OLDEST = (1, 9)            # the oldest dbt-bulwark supports

_SPEC = re.compile(r"^\s*(>=|==|=|>|~=)?\s*v?(\d+)\.(\d+)")


def parse_version(text: Any) -> tuple[int, int] | None:
    m = re.match(r"^\s*v?(\d+)\.(\d+)", str(text or ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


def _lower_bound(require: Any) -> tuple[int, int] | None:
    """The lowest version a ``require-dbt-version`` value admits (None: no lower bound)."""
    items = require if isinstance(require, list) else [require]
    bounds: list[tuple[int, int]] = []
    for item in items:
        for part in str(item or "").split(","):
            part = part.strip()
            if not part or part.startswith(("<", "!")):
                continue
            m = _SPEC.match(part)
            if m:
                bounds.append((int(m.group(2)), int(m.group(3))))
    return max(bounds) if bounds else None


def rules_version(project_yml: Any, policy_value: Any = None) -> tuple[int, int]:
    """The (major, minor) of the dbt whose rules apply to this project."""
    chosen = parse_version(policy_value) if policy_value else None
    if chosen is None and isinstance(project_yml, dict):
        chosen = _lower_bound(project_yml.get("require-dbt-version"))
    if chosen is None or chosen > DEFAULT:
        return DEFAULT
    return max(chosen, OLDEST)


def unpacks_test_arguments(project_yml: Any, policy_value: Any = None) -> bool:
    """dbt >= 1.10 with ``flags.require_generic_test_arguments_property`` (default on)."""
    if rules_version(project_yml, policy_value) < (1, 10):
        return False
    flags = project_yml.get("flags") if isinstance(project_yml, dict) else None
    return not (isinstance(flags, dict)
                and flags.get("require_generic_test_arguments_property") is False)


def contract_base_types(project_yml: Any, policy_value: Any = None) -> bool:
    """dbt >= 1.11: contract types compare by base type (lower-cased, cut at ``(``)."""
    return rules_version(project_yml, policy_value) >= (1, 11)
