"""The execution layers on a real PostgreSQL server (dbt-postgres), started by the tests.

One throw-away server per session (tests/pg_server.py). The sample project is
copied into a git repository; its profile points at the server through a
``profiles.yml`` generated in a directory of its own (password via env_var).
Under ``CI=true`` a server that cannot start fails these tests instead of
skipping them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dbt_oracle
import pytest
import yaml
from conftest import skip_or_fail
from pg_server import PASSWORD, PgServer, PgUnavailable
from test_ci_e2e import _edit, _git, _layers, _repo

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "jaffle_bulwark"
LAYERS = ("fast-compile", "critical-tags", "contracts", "schema-diff", "build-empty",
          "data-quality", "baselines")


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    try:
        import dbt.adapters.postgres  # noqa: F401
    except ImportError as exc:
        skip_or_fail(f"dbt-postgres is not installed (the dev extra has it): {exc}")
    dbt_oracle.require_dbt()
    try:
        server = PgServer.start()
    except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
        skip_or_fail(f"no PostgreSQL server here: {exc}")
    try:
        yield server
    finally:
        server.stop()


def _profiles(tmp_path: Path, pg: PgServer) -> Path:
    pdir = tmp_path / "profiles"
    pdir.mkdir()
    (pdir / "profiles.yml").write_text(yaml.safe_dump(pg.profile("jaffle_bulwark")))
    return pdir


def bulwark(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", *args], cwd=cwd,
                          env=_env(cwd), capture_output=True, text=True, timeout=1200)


def _env(cwd: Path) -> dict[str, str]:
    env = dbt_oracle.dbt_env()
    env["HOME"] = str(cwd.parent)
    env["BULWARK_TEST_PG_PASSWORD"] = PASSWORD
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                      env.get("PYTHONPATH")]))
    return env


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_on_postgres_same_summary_as_duckdb(tmp_path: Path, pg: PgServer) -> None:
    repo = _repo(tmp_path)
    pdir = _profiles(tmp_path, pg)
    before = _sha(pdir / "profiles.yml")
    proc = bulwark(repo, "ci", "--full", "--all-files", "--target", "pg", "--profiles-dir",
                   str(pdir), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    layers = _layers(proc)
    for name in LAYERS:
        assert layers[name]["status"] == "passed", (name, layers[name])
    assert "scratch schema analytics_bulwark_" in layers["build-empty"]["details"][0]
    assert "(postgres)" in layers["build-empty"]["details"][0]
    assert layers["data-quality"]["summary"] == "8 test(s) on 2 model(s): 0 failed"
    assert layers["baselines"]["summary"] == "2 model(s) match their baseline"
    # the committed baselines were captured on DuckDB: same stats on Postgres
    assert any("captured on duckdb, measured on postgres: types compared by family, "
               "content hash compared" in d for d in layers["baselines"]["details"])
    # the user's profile is untouched, nothing is left on the server, no user schema made
    assert _sha(pdir / "profiles.yml") == before
    assert pg.schemas() == set()
    assert _git(repo, "status", "--porcelain") == ""


def test_baselines_on_postgres_agree_with_duckdb_and_catch_changes(tmp_path: Path,
                                                                    pg: PgServer) -> None:
    repo = _repo(tmp_path)
    pdir = _profiles(tmp_path, pg)
    duck = {p.name: json.loads(p.read_text())
            for p in (repo / ".bulwark/baselines").glob("*.json")}
    cap = bulwark(repo, "baseline", "capture", "--target", "pg", "--profiles-dir", str(pdir))
    assert cap.returncode == 0, cap.stdout + cap.stderr
    for name, old in duck.items():
        new = json.loads((repo / ".bulwark/baselines" / name).read_text())
        assert new["adapter"] == "postgres" and new["content_hash"]
        assert new["row_count"] == old["row_count"]
        # no float columns in the sample: the same row text, the same 60 bits of md5
        assert new["content_hash"] == old["content_hash"], name
        for a, b in zip(old["columns"], new["columns"], strict=True):
            stats = {k: v for k, v in a.items() if k != "type"}
            assert stats == {k: v for k, v in b.items() if k != "type"}, (name, a, b)
    _git(repo, "commit", "-qam", "postgres baselines")
    assert pg.schemas() == set()
    ok = bulwark(repo, "baseline", "check", "--target", "pg", "--profiles-dir", str(pdir))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    orders = repo / "models/marts/orders.sql"
    # a rounding change (to tens) and a renamed value, which the tests do not see
    _edit(orders, "cast(coalesce(p.amount, 0) as decimal(18, 2))",
          "cast(round(coalesce(p.amount, 0), -1) as decimal(18, 2))")
    _edit(orders, "    o.status,", "    replace(o.status, 'shipped', 'sent') as status,")
    bad = bulwark(repo, "baseline", "check", "--target", "pg", "--profiles-dir", str(pdir))
    assert bad.returncode == 1, bad.stdout
    assert "BLK532 orders: column status: max shipped -> sent" in bad.stdout, bad.stdout
    assert "BLK532 orders: column amount: sum" in bad.stdout, bad.stdout
    _git(repo, "checkout", "-q", "--", "models")
    # a filter: rows disappear
    _edit(repo / "models/marts/customers.sql", "left join order_totals",
          "inner join order_totals")
    bad = bulwark(repo, "baseline", "check", "--target", "pg", "--profiles-dir", str(pdir))
    assert bad.returncode == 1 and "BLK531 customers: row count" in bad.stdout, bad.stdout
    _git(repo, "checkout", "-q", "--", "models")
    # the same rows, one value rounded differently: the content hash (Postgres SQL) differs
    _edit(repo / "seeds/raw_payments.csv", "\n1,1,credit_card,1400\n",
          "\n1,1,credit_card,1401\n")
    _edit(repo / "seeds/raw_payments.csv", "\n2,2,gift_card,3900\n",
          "\n2,2,gift_card,3899\n")
    bad = bulwark(repo, "baseline", "check", "orders", "--target", "pg", "--profiles-dir",
                  str(pdir))
    assert bad.returncode == 1, bad.stdout
    assert "BLK53" in bad.stdout, bad.stdout
    assert pg.schemas() == set()


def test_two_runs_at_once_and_a_failed_run_leave_nothing(tmp_path: Path,
                                                        pg: PgServer) -> None:
    good = _repo(tmp_path / "a")
    bad = _repo(tmp_path / "b")
    pdir = _profiles(tmp_path, pg)
    # the failing run: a model the database rejects
    (bad / "models/marts/broken.sql").write_text("select no_such_column from "
                                                 "{{ ref('orders') }}\n")
    args = ("ci", "--layers", "build-empty,data-quality", "--all-files", "--target", "pg",
            "--profiles-dir", str(pdir), "--format", "json")
    procs = [subprocess.Popen([sys.executable, "-m", "dbt_bulwark.cli", *args], cwd=repo,
                              env=_env(repo), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for repo in (good, bad)]
    outs = [p.communicate(timeout=1200) for p in procs]
    assert procs[0].returncode == 0, outs[0]
    assert procs[1].returncode == 1, outs[1]
    bad_layers = {x["layer"]: x for x in json.loads(outs[1][0])["layers"]}
    assert bad_layers["build-empty"]["status"] == "failed"
    assert any(f["code"] == "BLK510" and "broken" in f["message"]
               for f in bad_layers["build-empty"]["findings"])
    scratch = {d.split("scratch schema ")[1] for o in outs
               for x in json.loads(o[0])["layers"] for d in x["details"]
               if "scratch schema " in d}
    assert len(scratch) == 2, scratch        # each run its own schema
    assert pg.schemas() == set()             # and both dropped, the failed one too


def test_missing_or_wrong_target_is_one_line_and_exit_2(tmp_path: Path, pg: PgServer) -> None:
    repo = _repo(tmp_path)
    pdir = _profiles(tmp_path, pg)
    wrong = bulwark(repo, "ci", "--full", "--target", "nope", "--profiles-dir", str(pdir))
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "--target nope: profile 'jaffle_bulwark'" in wrong.stderr
    assert "has no such target (targets: pg)" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = bulwark(repo, "baseline", "check", "--target", "pg", "--profiles-dir",
                      str(empty))
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "no profile 'jaffle_bulwark'" in missing.stderr
    assert "Traceback" not in missing.stderr
