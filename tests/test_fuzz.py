"""Bounded fuzz test (issue 11): generated malformed YAML, Jinja and SQL fed to every hook.

A clean project is committed in a real git repository (the base); each case then damages
the working tree with a seeded random mix of mutations (truncated or re-indented YAML,
stray Jinja delimiters, dropped SQL tokens, odd bytes and line endings) and runs every
static hook on it. Whatever the input: no traceback, no hang past the time limit, exit
0, 1 or 2 only (3 is bulwark's own internal error and fails the test).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

HOOKS = ["fast-compile", "check-contracts", "check-critical-tags", "check-schema-diff", "check"]
CASES = 12
SEED = 20261201
HANG_LIMIT = 120   # seconds for one hook on a five-file project: far past any honest run

PROJECT = {
    "dbt_project.yml": "name: fuzz\nversion: '1.0'\nconfig-version: 2\nprofile: fuzz\n"
                       "models:\n  fuzz:\n    +materialized: view\n"
                       "vars:\n  start: '2020-01-01'\n",
    "bulwark.yml": "dialect: duckdb\n",
    "models/stg_orders.sql": "{{ config(tags=['critical']) }}\n"
                             "select id, customer_id, amount, cast(ordered_at as date) as day\n"
                             "from {{ ref('raw_orders') }}\nwhere ordered_at >= '{{ var(\"start\") }}'\n",
    "models/orders.sql": "with o as (\n  select * from {{ ref('stg_orders') }}\n)\n"
                         "select customer_id, sum(amount) as total\nfrom o\ngroup by 1\n",
    "models/schema.yml": "version: 2\nmodels:\n  - name: stg_orders\n    description: staged\n"
                         "    config:\n      contract: {enforced: true}\n      meta: {owner: a}\n"
                         "    columns:\n      - name: id\n        data_type: integer\n"
                         "        data_tests: [unique, not_null]\n"
                         "      - name: customer_id\n        data_type: integer\n"
                         "      - name: amount\n        data_type: integer\n"
                         "      - name: day\n        data_type: date\n"
                         "  - name: orders\n    columns:\n      - name: total\n",
    "macros/cents.sql": "{% macro cents(x) %}({{ x }} * 100){% endmacro %}\n",
    "seeds/raw_orders.csv": "id,customer_id,amount,ordered_at\n1,1,10,2020-01-02\n",
}

JINJA_JUNK = ["{{", "}}", "{%", "%}", "{% if x %}", "{% endif %}", "{% endmacro %}",
              "{{ ref('nope') }}", "{{ ref() }}", "{{ var('missing') }}", "{# open",
              "{% for i in range(10**9) %}", "{{ config(materialized=) }}", "{% set ns.x = 1 %}",
              "{{ cycler.__init__.__globals__ }}", "{{ source('a') }}", "{% call x() %}"]
SQL_JUNK = ["(", ")", ",", "selct", "from", "union all", "order by", "'", "\"", ";", "--",
            "/*", "qualify", "*", "group by 99"]
YAML_JUNK = ["  ", "\t", ": ", "- ", "&a ", "*a", "[", "]", "{", "}", "'", "\"", "---\n",
             "columns:", "name: [1, 2]", "data_type: {{ x }}", "? ", "!!python/object:os.system "]
BYTES = ["\x00", "\ufeff", "\r", "\r\n", "\u00e9", "\udcff", "\x1b[31m", "\u202e"]


def _mutate(text: str, junk: list[str], rnd: random.Random) -> str:
    for _ in range(rnd.randint(1, 4)):
        kind = rnd.random()
        pos = rnd.randint(0, len(text))
        if kind < 0.35:
            text = text[:pos] + rnd.choice(junk) + text[pos:]
        elif kind < 0.55:
            end = min(len(text), pos + rnd.randint(1, 12))
            text = text[:pos] + text[end:]
        elif kind < 0.7:
            text = text[:pos]                                    # truncated
        elif kind < 0.85:
            text = text[:pos] + rnd.choice(BYTES) + text[pos:]
        else:
            lines = text.split("\n")
            i = rnd.randrange(len(lines))
            lines[i] = " " * rnd.randint(1, 3) + lines[i]       # indentation slip
            text = "\n".join(lines)
    return text


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.mark.parametrize("case", range(CASES))
def test_malformed_input_never_crashes_or_hangs(tmp_path: Path, case: int) -> None:
    rnd = random.Random(SEED + case)
    root = tmp_path / "repo"
    for rel, text in PROJECT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    victims = rnd.sample(sorted(PROJECT), k=rnd.randint(1, 3))
    for rel in victims:
        junk = YAML_JUNK if rel.endswith((".yml", ".csv")) else JINJA_JUNK + SQL_JUNK
        damaged = _mutate(PROJECT[rel], junk, rnd)
        (root / rel).write_bytes(damaged.encode("utf-8", "surrogateescape"))
    env = {**os.environ, "BULWARK_RENDER_TIMEOUT": "3", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PRE_COMMIT", None)
    for hook in HOOKS:
        cmd = [sys.executable, "-m", "dbt_bulwark.cli", hook, "--no-cache", "--format", "json",
               *victims]
        try:
            proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=HANG_LIMIT, check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{hook} hung past {HANG_LIMIT} s on {victims} (case {case})")
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, (hook, victims, out)
        assert proc.returncode in (0, 1, 2), (hook, victims, proc.returncode, out)
