"""A column removed from a model bulwark cannot render (it calls a macro of a package that
is not installed) while downstream models read it: the schema diff reads both revisions'
columns from their stand-in renders (standins.output_columns), and only when that is
certain. Scripted git repositories, `bulwark check-schema-diff` / `bulwark check` run as
the pre-commit hook runs (base = the index's HEAD).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_standins import _env, _git, committed_repo

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# an invented project: the `keysmith` package is declared in packages.yml, never installed
PROJECT = {
    "dbt_project.yml": "name: ledger\nversion: '1.0'\nconfig-version: 2\nprofile: ledger\n",
    "packages.yml": "packages:\n  - package: acme/keysmith\n    version: 0.3.0\n",
    "models/stg_invoices.sql": (
        "select\n"
        "    7 as invoice_id,\n"
        "    3 as client_id,\n"
        "    'open' as state,\n"
        "    12.5 as total\n"
    ),
    # one package macro call, aliased: every output column is named by the query
    "models/invoices_keyed.sql": (
        "with src as (\n"
        "    select * from {{ ref('stg_invoices') }}\n"
        ")\n"
        "select\n"
        "    {{ keysmith.hash_key(['invoice_id', 'client_id']) }} as invoice_key,\n"
        "    invoice_id,\n"
        "    client_id,\n"
        "    state,\n"
        "    total\n"
        "from src\n"
    ),
    "models/invoice_report.sql": (
        "select\n"
        "    k.invoice_key,\n"
        "    k.state,\n"
        "    k.total\n"
        "from {{ ref('invoices_keyed') }} as k\n"
    ),
    # a downstream model that cannot be rendered either: its stand-in render is read
    "models/invoice_flags.sql": (
        "select\n"
        "    {{ keysmith.hash_key(['k.total']) }} as flag_key,\n"
        "    k.state as flag_state\n"
        "from {{ ref('invoices_keyed') }} as k\n"
    ),
    # ... and one whose unqualified name could be a column of what the package returns
    "models/invoice_days.sql": (
        "select state, day_on\n"
        "from {{ ref('invoices_keyed') }}\n"
        "cross join {{ keysmith.calendar() }}\n"
    ),
    "models/schema.yml": (
        "version: 2\n"
        "models:\n"
        "  - name: invoices_keyed\n"
        "    description: invoices with a key\n"
    ),
    # the macro writes columns itself (a select item of its own, no alias)
    "models/invoices_wide.sql": (
        "select\n"
        "    invoice_id,\n"
        "    state,\n"
        "    {{ keysmith.all_but(ref('stg_invoices'), ['invoice_id', 'state']) }}\n"
        "from {{ ref('stg_invoices') }}\n"
    ),
    "models/wide_report.sql": (
        "select w.invoice_id, w.state, w.total from {{ ref('invoices_wide') }} as w\n"
    ),
    # a loop over what the package returns: the columns it writes are unknown
    "models/invoices_looped.sql": (
        "select\n"
        "    invoice_id,\n"
        "    {% for c in keysmith.columns_of(ref('stg_invoices')) %}{{ c }}, {% endfor %}\n"
        "    state\n"
        "from {{ ref('stg_invoices') }}\n"
    ),
    "models/looped_report.sql": (
        "select l.invoice_id, l.state, l.total from {{ ref('invoices_looped') }} as l\n"
    ),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return committed_repo(tmp_path_factory.mktemp("standin_cols") / "repo", PROJECT)


def _staged(repo: Path, edits: dict[str, str], command: str = "check-schema-diff"
            ) -> subprocess.CompletedProcess[str]:
    """Stage ``edits`` (path -> new text), run ``command`` as the hook, restore the base."""
    env = _env()
    env["PRE_COMMIT"] = "1"
    try:
        for rel, text in edits.items():
            (repo / rel).write_text(text, encoding="utf-8")
        _git(repo, "add", "-A")
        return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", command, *edits],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    finally:
        _git(repo, "reset", "-q", "--hard")


def _raised(out: str) -> list[str]:
    """Findings above info."""
    return [line for line in out.splitlines()
            if " BLK" in line and "[info]" not in line and " BLK4" in line
            or " BLK" in line and "[warning]" in line]


def _errors(out: str) -> list[str]:
    return [line for line in out.splitlines()
            if " BLK" in line and "[info]" not in line and "[warning]" not in line]


def _edit(rel: str, old: str, new: str) -> dict[str, str]:
    assert old in PROJECT[rel]
    return {rel: PROJECT[rel].replace(old, new, 1)}


def test_removed_column_used_downstream_is_an_error(repo: Path) -> None:
    proc = _staged(repo, _edit("models/invoices_keyed.sql", "    state,\n", ""))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    removed = [e for e in errors if "BLK401" in e]
    assert len(removed) == 1 and "'state' was removed from 'invoices_keyed'" in removed[0]
    assert removed[0].startswith("models/invoices_keyed.sql:")
    uses = sorted(e for e in errors if "BLK410" in e)
    assert len(uses) == 2, proc.stdout
    assert uses[0].startswith("models/invoice_flags.sql:3:")
    assert uses[1].startswith("models/invoice_report.sql:3:")
    assert all("certain to break" in u for u in uses)
    assert len(errors) == 3, proc.stdout
    # the unqualified name beside a stand-in relation: not analysed, said so
    assert any(line.startswith("models/invoice_days.sql:") and "BLK432" in line
               for line in proc.stdout.splitlines()), proc.stdout


def test_removed_column_fails_bulwark_check(repo: Path) -> None:
    proc = _staged(repo, _edit("models/invoices_keyed.sql", "    total\n", "    1 as n\n"),
                   "check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert any("BLK410" in e and e.startswith("models/invoice_report.sql:4:")
               for e in _errors(proc.stdout)), proc.stdout


def test_removed_column_no_model_names_is_no_use(repo: Path) -> None:
    proc = _staged(repo, _edit("models/invoices_keyed.sql", "    client_id,\n", ""))
    assert "BLK401" in proc.stdout and "'client_id' was removed" in proc.stdout
    assert "BLK410" not in proc.stdout


@pytest.mark.parametrize("rel,old,new", [
    # the macro's own columns change: they are unknown, no claim either way
    ("models/invoices_wide.sql", "['invoice_id', 'state']", "['invoice_id', 'state', 'total']"),
    # a written column goes while the macro (presumably) writes it now
    ("models/invoices_wide.sql", "    state,\n", ""),
    ("models/invoices_looped.sql", "    invoice_id,\n", ""),
    ("models/invoices_looped.sql", "{{ c }}, {% endfor %}", "{{ c }}_v, {% endfor %}"),
], ids=["macro-args", "macro-writes-it", "loop", "loop-body"])
def test_columns_the_macro_writes_are_never_claimed(repo: Path, rel: str, old: str,
                                                    new: str) -> None:
    proc = _staged(repo, _edit(rel, old, new))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BLK401" not in proc.stdout and "BLK410" not in proc.stdout
    assert "BLK431" in proc.stdout      # still said: unknown


@pytest.mark.parametrize("rel,old,new", [
    ("models/invoices_keyed.sql", "with src", "-- checked by finance\nwith src"),
    ("models/invoices_keyed.sql", "    total\n", "    total  \n\n"),
    ("models/invoices_keyed.sql", "    total\n", "    total,\n    total * 2 as double_total\n"),
    ("models/invoices_keyed.sql", "['invoice_id', 'client_id']", "['client_id', 'invoice_id']"),
    ("models/schema.yml", "invoices with a key", "invoices, keyed"),
], ids=["comment", "whitespace", "new-column", "macro-args", "description"])
def test_benign_edits_stay_clean(repo: Path, rel: str, old: str, new: str) -> None:
    proc = _staged(repo, _edit(rel, old, new), "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not _errors(proc.stdout)
    assert not [line for line in proc.stdout.splitlines() if "[warning]" in line]


def test_clean_tree_is_clean(repo: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "check", "--all-files"],
                          cwd=repo, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not _errors(proc.stdout)
    assert "BLK401" not in proc.stdout and "BLK410" not in proc.stdout
