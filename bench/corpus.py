"""The real-project corpus: public dbt projects that the hooks are proven on (issue 10).

The projects are NOT part of this repository (their code stays in their own repositories);
this file only records which ones, at which commit, and which dbt project folders in them.

    python bench/corpus.py list
    python bench/corpus.py checkout --dest /work/corpus --source /work/.mirror
    python bench/corpus.py checkout --dest ~/corpus --source https://github.com
    python bench/corpus.py checkout --dest ~/corpus --only tuva,jaffle_shop_duckdb

`--source` is either a folder of mirrors laid out as `<owner>+<name>/repo` (bare git dirs)
or `<owner>/<name>` (any layout `git clone` accepts), or a URL prefix (`https://github.com`):
each project is cloned from `<source>/<owner>/<name>` (or the mirror path) and checked out
at the recorded commit, detached. An existing checkout is left alone (and reported) when it
is already at the commit; otherwise it is skipped with a note (never deleted).
No `dbt deps` is run: a checkout is a fresh clone, without `dbt_packages/`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Project:
    name: str  # short name: the folder under --dest
    repo: str  # owner/name on GitHub
    commit: str  # the commit measured
    subdirs: tuple[str, ...]  # the dbt projects in it (folders holding dbt_project.yml) to check
    adapter: str  # the adapter its own profile / CI targets
    note: str = ""
    tags: tuple[str, ...] = field(default=())  # duckdb-native, monorepo, large (>300 models)
    # extra hook arguments a user of this project would configure (e.g. the --vars its
    # orchestrator always passes); used by corpus_run.py and fault_injection.py
    hook_args: tuple[str, ...] = field(default=())
    # folders outside the dbt projects that they read (e.g. `model-paths: ["../../sources"]`)
    extra: tuple[str, ...] = field(default=())


PROJECTS: tuple[Project, ...] = (
    Project("jaffle-shop", "dbt-labs/jaffle-shop", "7be2c5838dbdeca8e915d4e46db70e910753d7f6",
            (".",), "snowflake", "dbt Labs' current demo; packages dbt_utils, dbt_date"),
    Project("jaffle_shop_duckdb", "dbt-labs/jaffle_shop_duckdb",
            "9b13827913b230a045b0a71736a00e2053fbcb16", (".",), "duckdb",
            "classic jaffle shop on DuckDB", ("duckdb-native",)),
    Project("nba-monte-carlo", "matsonj/nba-monte-carlo", "6363a857bc1ba0ebaa31d6a68160949581c99169",
            ("transform",), "duckdb", "MDS-in-a-box, DuckDB + parquet", ("duckdb-native",)),
    Project("hooli", "dagster-io/hooli-data-eng-pipelines",
            "272eb866ec22fc27abba873b64da25a9f81bc05a", ("dbt_project",), "duckdb",
            "Dagster demo; duckdb locally, snowflake in prod", ("duckdb-native",),
            # Dagster always passes these (dbt parse fails without them, like the hook)
            ("--vars", "{min_date: '2020-01-01', max_date: '2030-01-01'}")),
    Project("data-infra", "cal-itp/data-infra", "f20856f3f4cfe37f9e36f42bfe3ea22f6d4a2cfa",
            ("warehouse",), "bigquery", "California transit warehouse (~610 models)", ("large",)),
    Project("tuva", "tuva-health/tuva", "6be34c7add402a897dd020fa51c6be586847eb41",
            (".", "integration_tests"), "multi (duckdb/bigquery/snowflake/databricks/redshift/fabric)",
            "healthcare data model (~1,200 models) + its integration project",
            ("large", "monorepo")),
    Project("mattermost", "mattermost/mattermost-data-warehouse",
            "61af2424d790a8f83267f2b9ee12589fd32bcfa9",
            ("transform/mattermost-analytics", "transform/snowflake-dbt"), "snowflake",
            "two dbt projects (~490 models together)", ("large", "monorepo")),
    Project("balboa", "datacoves/balboa", "a19cafa12d1473c91aadeb6ab2b76e89200d20be",
            ("transform",), "snowflake", "Datacoves demo analytics project"),
    Project("spellbook", "duneanalytics/spellbook", "91dac121414fe46afdb47690ea5906871373dba5",
            ("dbt_subprojects/tokens", "dbt_subprojects/solana"), "trino",
            "Dune's spellbook; two of its five sub-projects (~880 models)",
            ("large", "monorepo"), extra=("sources", "dbt_macros")),
    Project("dbt-utils", "dbt-labs/dbt-utils", "700764ce230b2fb775b5338b6bc77a72233ea34c",
            (".", "integration_tests"), "postgres", "package + integration project (local: ../)"),
    Project("dbt-project-evaluator", "dbt-labs/dbt-project-evaluator",
            "927abbd523b627f4f1595e2fb93ebf2244314bd6", (".", "integration_tests"), "postgres",
            "package (~86 models) + integration project; also runs on duckdb in CI"),
    Project("dbt_artifacts", "brooklyn-data/dbt_artifacts",
            "6d37fa068c47de8ab85722047ca5af3f873cd508", (".", "integration_test_project"),
            "snowflake", "package + integration project (multi-adapter CI)"),
    Project("fivetran_log", "fivetran/dbt_fivetran_log", "63e5200fa65c2788f68d8fb77c863671fae0cb5d",
            (".", "integration_tests"), "postgres",
            "Fivetran package (multi-adapter CI: postgres/snowflake/bigquery/redshift/databricks)"),
    Project("hubspot", "fivetran/dbt_hubspot", "be3a903c24d804bdeea3629c0dda005fb114527f",
            (".", "integration_tests"), "postgres",
            "Fivetran package, ~150 models (multi-adapter CI)"),
    Project("redshift", "dbt-labs/redshift", "ad9e686eefe8b15ed47c134799c695ae58767672",
            (".",), "redshift", "Redshift system-table models and utilities"),
    Project("dbt-expectations", "calogica/dbt-expectations",
            "c7dc2af8e1bd00b24583bea88cd883b88b706aab", (".", "integration_tests"), "postgres",
            "test-macro package + integration project (multi-adapter CI)"),
    Project("databricks-c360", "databricks-demos/dbt-databricks-c360",
            "5ea27bd820c0ed2045fcf576e3131e39f0f520c8", (".",), "databricks",
            "Databricks customer-360 demo"),
)


# Packages that corpus_run.py can install under dbt_packages/ (the "with packages" runs),
# keyed by the name in their own dbt_project.yml (the folder dbt deps creates). Their HEAD,
# or the newest tag in the range the projects pin (fivetran_utils 0.4.x: HEAD dropped macros).
PACKAGES: dict[str, tuple[str, str]] = {
    "dbt_utils": ("dbt-labs/dbt-utils", "700764ce230b2fb775b5338b6bc77a72233ea34c"),
    "dbt_date": ("calogica/dbt-date", "3580a09de74f25c66838f80fe79bb9c346351e62"),
    "dbt_expectations": ("metaplane/dbt-expectations", "77d385655ce3318685cf6930b46d077f61de5f55"),
    "fivetran_utils": ("fivetran/dbt_fivetran_utils", "ccf3d58a6919cfd234699ef1f1143b65e05ef9ad"),  # v0.4.11
    "spark_utils": ("dbt-labs/spark-utils", "f1771e7906b3c8fa5bc93b68174a9a5d5ddc2730"),
}
# packages.yml spellings -> dbt_project.yml name
PACKAGE_ALIASES: dict[str, str] = {
    "dbt-labs/dbt_utils": "dbt_utils",
    "calogica/dbt_date": "dbt_date",
    "godatadriven/dbt_date": "dbt_date",
    "calogica/dbt_expectations": "dbt_expectations",
    "metaplane/dbt_expectations": "dbt_expectations",
    "fivetran/fivetran_utils": "fivetran_utils",
    "dbt-labs/spark_utils": "spark_utils",
}


def by_name(names: str | None) -> list[Project]:
    if not names:
        return list(PROJECTS)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {p.name: p for p in PROJECTS}
    missing = [n for n in wanted if n not in known]
    if missing:
        raise SystemExit(f"unknown project(s): {', '.join(missing)} (see `corpus.py list`)")
    return [known[n] for n in wanted]


def clone_url(source: str, repo: str) -> str:
    owner, name = repo.split("/")
    if "://" in source or source.startswith("git@"):
        return f"{source.rstrip('/')}/{repo}"
    base = Path(source)
    for cand in (base / f"{owner}+{name}" / "repo", base / f"{owner}+{name}", base / owner / name):
        if cand.exists():
            return str(cand)
    return str(base / f"{owner}+{name}" / "repo")


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def checkout(project: Project, dest: Path, source: str) -> str:
    target = dest / project.name
    if target.exists():
        head = git("rev-parse", "HEAD", cwd=target).stdout.strip()
        if head == project.commit:
            return f"{project.name}: already at {project.commit[:12]}"
        return f"{project.name}: SKIPPED, {target} exists at {head[:12] or '?'} (not touched)"
    url = clone_url(source, project.repo)
    proc = git("clone", "--quiet", "--no-checkout", url, str(target))
    if proc.returncode:
        return f"{project.name}: clone from {url} failed: {proc.stderr.strip()[-200:]}"
    proc = git("-c", "advice.detachedHead=false", "checkout", "--quiet", project.commit, cwd=target)
    if proc.returncode:
        return f"{project.name}: checkout {project.commit[:12]} failed: {proc.stderr.strip()[-200:]}"
    return f"{project.name}: cloned {project.repo} at {project.commit[:12]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the corpus as a Markdown table")
    co = sub.add_parser("checkout", help="clone every project at its recorded commit")
    co.add_argument("--dest", required=True, help="folder to clone into (one folder per project)")
    co.add_argument("--source", default="https://github.com",
                    help="mirror folder or URL prefix (default: https://github.com)")
    co.add_argument("--only", help="comma-separated short names")
    co.add_argument("--packages", action="store_true",
                    help="also clone the PACKAGES (into DEST/_packages/<name>)")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        print("| project | repository | commit | dbt projects | adapter | tags |")
        print("|---|---|---|---|---|---|")
        for p in PROJECTS:
            print(f"| {p.name} | {p.repo} | `{p.commit[:12]}` | {', '.join(p.subdirs)} | "
                  f"{p.adapter} | {', '.join(p.tags)} |")
        return 0
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    failed = 0
    for p in by_name(args.only):
        line = checkout(p, dest, args.source)
        failed += "failed" in line
        print(line)
    if args.packages:
        (dest / "_packages").mkdir(exist_ok=True)
        for name, (repo, commit) in PACKAGES.items():
            line = checkout(Project(name, repo, commit, (".",), ""), dest / "_packages", args.source)
            failed += "failed" in line
            print("package " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
