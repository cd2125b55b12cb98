"""The columns of a Python model whose code spells them out (a pandas DataFrame built with
a literal ``columns=`` list): its readers' columns are checked like a SQL model's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_standins import _env, _git, committed_repo

from dbt_bulwark.sql.schema import python_model_columns

FRAME = "import pandas as pd\n\n\ndef model(dbt, session):\n"


@pytest.mark.parametrize(("body", "expected"), [
    ("    return pd.DataFrame(columns=['a', 'b'], data=[])\n", ["a", "b"]),
    ("    cols = ['a', 'b']\n    rows = []\n    return pd.DataFrame(columns=cols, data=rows)\n",
     ["a", "b"]),
    ("    if dbt.config.get('x'):\n        return pd.DataFrame(columns=['a'])\n"
     "    return pd.DataFrame(columns=['a'])\n", ["a"]),
    # not spelled out, or could change on the way: unknown
    ("    return dbt.ref('x')\n", None),
    ("    return pd.DataFrame(rows)\n", None),
    ("    if 1:\n        return pd.DataFrame(columns=['a'])\n"
     "    return pd.DataFrame(columns=['a', 'b'])\n", None),
    ("    cols = ['a']\n    cols.append('b')\n    return pd.DataFrame(columns=cols)\n", None),
    ("    cols = ['a']\n    cols = ['b']\n    return pd.DataFrame(columns=cols)\n", None),
    ("    cols = ['a']\n    cols += ['b']\n    return pd.DataFrame(columns=cols)\n", None),
    ("    return pd.DataFrame(columns=['a', 'a'])\n", None),
    ("    return pd.DataFrame(columns=[name for name in 'ab'])\n", None),
])
def test_python_model_columns(body: str, expected: list[str] | None) -> None:
    assert python_model_columns(FRAME + body) == expected


def test_no_model_function_or_broken_code_is_unknown() -> None:
    assert python_model_columns("x = 1\n") is None
    assert python_model_columns("def model(dbt, session:\n") is None


PROJECT = {
    "dbt_project.yml": "name: league\nversion: '1.0'\nconfig-version: 2\nprofile: league\n",
    "bulwark.yml": "dialect: duckdb\n",
    "models/ratings.py": FRAME + (
        "    names = ['game_id', 'home', 'rating']\n"
        "    return pd.DataFrame(columns=names, data=[(1, 'x', 1.5)])\n"),
    "models/teams.sql": "select 'x' as code, 'Xavier' as team\n",
    "models/results.sql": (
        "select\n"
        "    r.*,\n"
        "    t.team as home_name\n"
        "from {{ ref('ratings') }} r\n"
        "left join {{ ref('teams') }} t on t.code = r.home\n"),
    "models/by_team.sql": "select home_name, rating from {{ ref('results') }}\n",
}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_column_removed_beside_the_star_of_a_python_model_is_caught(tmp_path: Path) -> None:
    repo = committed_repo(tmp_path / "league", PROJECT)

    def staged(rel: str, text: str) -> subprocess.CompletedProcess[str]:
        (repo / rel).write_text(text, encoding="utf-8")
        _git(repo, "add", "-A")
        try:
            return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "check", rel],
                                  cwd=repo, env={**_env(), "PRE_COMMIT": "1"},
                                  capture_output=True, text=True, timeout=600)
        finally:
            _git(repo, "reset", "-q", "--hard")

    clean = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "check", "--all-files"],
                           cwd=repo, env=_env(), capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    proc = staged("models/results.sql", PROJECT["models/results.sql"].replace(
        "    r.*,\n    t.team as home_name\n", "    r.*\n"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "models/by_team.sql:1:8: BLK140 column 'home_name'" in proc.stdout, proc.stdout
    # a column the Python model still has is no finding
    proc = staged("models/by_team.sql", "select home, rating from {{ ref('results') }}\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # ... and one it does not have is
    proc = staged("models/by_team.sql", "select away, rating from {{ ref('results') }}\n")
    assert proc.returncode == 1 and "BLK140 column 'away'" in proc.stdout, proc.stdout
