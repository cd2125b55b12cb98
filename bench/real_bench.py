#!/usr/bin/env python3
"""Real-project speed benchmark: bulwark against dbt, side by side, in one run.

    python bench/real_bench.py --project NAME=DIR [--adapter NAME=bigquery]
        [--dbt-dir NAME=SUBDIR ...] [--edit-dir NAME=SUBDIR ...] [--vars NAME=JSON]
        [--package NAME=PKG:GITDIR@REV ...] [--package NAME=PKG:local:PATH ...]
        [--repeat 3] [--out FILE] [--bulwark PATH] [--dbt PATH] [--pre-commit PATH]
        [--prepare-only]

DIR is a dbt project folder of a checkout of a real public project (e.g. cal-itp/data-infra's
``warehouse/``), or a folder holding several dbt projects (a monorepo), each named by a
``--dbt-dir NAME=SUBDIR`` (default: DIR itself is the one project). For each project the
script makes a fresh copy (no ``dbt_packages/``, ``target/``, ``.bulwark-cache/``), commits
it in a new git repository, installs the given packages from local git mirrors (``dbt
deps`` needs the hub, which may be unreachable; a package is a ``git archive`` of REV into
``dbt_packages/PKG``, or into the folder PKG of the copy when PKG is a path such as
``SUBDIR/dbt_packages/dbt_utils``; ``PKG:local:PATH`` is a symlink to PATH, as ``dbt deps``
installs a ``local:`` package), writes a dummy profile for the adapter covering every
profile name of the dbt projects (``dbt parse`` works offline with it for bigquery /
snowflake / postgres / duckdb), and times, median of --repeat runs, wall clock and CPU
(user+sys):

* ``dbt parse --no-partial-parse`` and ``dbt parse`` (partial, nothing changed); in a
  monorepo, one ``sh -c`` parses every ``--dbt-dir`` in turn, so a row is their sum;
* ``bulwark check --all-files`` cold (``.bulwark-cache/`` deleted) and warm;
* a 1-file and a 10-file commit through ``pre-commit run`` with the combined ``bulwark``
  hook, cold and warm (model files spread over the ``models/`` of every ``--dbt-dir``, or
  of every ``--edit-dir NAME=SUBDIR`` when given). The hook is declared ``repo: local`` /
  ``language: system`` with the same ``entry`` (``bulwark check``) and ``files`` as the
  ``bulwark`` id of ``.pre-commit-hooks.yaml``, so no hook environment is built;
  pre-commit's own start-up, file filtering and the staged-files stash are measured.

``--vars NAME=JSON`` passes ``--vars JSON`` to every ``dbt parse`` and ``bulwark check`` of
the project (the hook's ``args``), e.g. to enable models that are off by default.
``--prepare-only`` makes the copies and prints their ``dbt parse`` command, to get it
working by hand first. Standard library only. Prints (and with --out writes) a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DUMMY_OUTPUTS = {
    "bigquery": "type: bigquery\n      method: oauth\n      project: bench-project\n"
                "      dataset: bench\n      threads: 1\n",
    "snowflake": "type: snowflake\n      account: bench\n      user: bench\n      password: x\n"
                 "      role: bench\n      database: BENCH\n      warehouse: BENCH\n"
                 "      schema: BENCH\n      threads: 1\n",
    "postgres": "type: postgres\n      host: localhost\n      user: bench\n      password: x\n"
                "      port: 5432\n      dbname: bench\n      schema: bench\n      threads: 1\n",
    "duckdb": "type: duckdb\n      path: bench.duckdb\n      threads: 1\n",
}
HOOK_FILES = r'(\.(sql|ya?ml|py|csv)|(^|/)(?!README\.md$)[^/]+\.md)$'


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800
        ) -> tuple[float, float, int, str]:
    """(wall s, cpu s, exit code, last output line)."""
    before = os.times()
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        rc, out = proc.returncode, (proc.stdout + proc.stderr).strip()
    except subprocess.TimeoutExpired:
        rc, out = -1, "timeout"
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + \
        (after.children_system - before.children_system)
    return wall, cpu, rc, (out.splitlines() or [""])[-1][:160]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def prepare(name: str, src: Path, work: Path, adapter: str, packages: list[str],
            bulwark: str, dbt_dirs: list[str], vars_: list[str]) -> tuple[Path, Path]:
    dest = work / name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "dbt_packages", "target", "logs", ".bulwark-cache", "*.duckdb", ".venv"))
    with open(dest / ".gitignore", "a", encoding="utf-8") as fh:
        fh.write("\ndbt_packages/\ntarget/\nlogs/\n.bulwark-cache/\nbench-profiles/\n")
    (dest / ".pre-commit-config.yaml").write_text(
        "repos:\n  - repo: local\n    hooks:\n      - id: bulwark\n"
        "        name: 'bulwark: all static checks (one project load)'\n"
        f"        entry: {bulwark} check\n        language: system\n"
        + (f"        args: {json.dumps(vars_)}\n" if vars_ else "") +
        f"        files: '{HOOK_FILES}'\n"
        "        types_or: [sql, yaml, python, csv, markdown]\n"
        "        exclude: '(^|/)(dbt_packages|dbt_internal_packages)/'\n"
        "        require_serial: true\n")
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "fresh clone")
    for spec in packages:  # PKG:GITDIR@REV or PKG:local:PATH, PKG a name or a path
        pkg, rest = spec.split(":", 1)
        target = dest / pkg if "/" in pkg else dest / "dbt_packages" / pkg
        if rest.startswith("local:"):   # a symlink, as dbt deps installs a `local:` package
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(rest.removeprefix("local:"))
            continue
        gitdir, rev = rest.rsplit("@", 1)
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "--git-dir", gitdir, "archive", rev], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    names = set()
    for sub in dbt_dirs:
        text = (dest / sub / "dbt_project.yml").read_text(encoding="utf-8")
        match = re.search(r"^profile:\s*['\"]?([\w-]+)", text, re.M)
        names.add(match.group(1) if match else "default")
    profiles = dest / "bench-profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "profiles.yml").write_text("".join(
        f"{profile}:\n  target: bench\n  outputs:\n    bench:\n      " + DUMMY_OUTPUTS[adapter]
        for profile in sorted(names)))
    return dest, profiles


def edit(project: Path, n: int, round_: int, dbt_dirs: list[str]) -> list[str]:
    """Append a comment to n model files (a commit of n files), staged."""
    models = sorted(p for sub in dbt_dirs for p in (project / sub / "models").rglob("*.sql"))
    step = max(1, len(models) // max(n, 1))
    chosen = models[::step][:n]
    for path in chosen:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"\n-- bench edit {round_}\n")
    rels = [str(p.relative_to(project)) for p in chosen]
    git(project, "add", *rels)
    return rels


def reset(project: Path) -> None:
    git(project, "reset", "-q", "--hard", "HEAD")


def dbt_parse(dbt: str, project: Path, dbt_dirs: list[str], *flags: str) -> list[str]:
    """``dbt parse`` of one project, or of every dbt project of a monorepo in one shell."""
    if dbt_dirs == ["."]:
        return [dbt, "parse", *flags]
    cmd = shlex.join([dbt, "parse", *flags])
    return ["sh", "-c", " && ".join(f"cd {shlex.quote(str(project / sub))} && {cmd}"
                                    for sub in dbt_dirs)]


def bench_project(name: str, project: Path, profiles: Path, args: argparse.Namespace,
                  dbt_dirs: list[str], vars_: list[str], edit_dirs: list[str]
                  ) -> list[tuple[str, str, list[tuple[float, float, int, str]]]]:
    env = {**os.environ, "DBT_PROFILES_DIR": str(profiles), "DO_NOT_TRACK": "1",
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "PRE_COMMIT_COLOR": "never"}
    env.pop("PRE_COMMIT", None)
    rows: list[tuple[str, str, list[tuple[float, float, int, str]]]] = []
    cache = project / ".bulwark-cache"
    rep = args.repeat

    def series(label: str, cmd: list[str], before: object = None, after: object = None
               ) -> None:
        runs = []
        for i in range(rep):
            if callable(before):
                before(i)
            runs.append(run(cmd, project, env))
            print(f"    {name}: {label}: run {i + 1}: {runs[-1][0]:.2f}s wall, "
                  f"{runs[-1][1]:.2f}s CPU (rc {runs[-1][2]})", flush=True)
            if callable(after):
                after(i)
        rows.append((name, label, runs))
        wall = statistics.median(r[0] for r in runs)
        print(f"  {name}: {label}: {wall:.2f}s (rc {runs[0][2]}) {runs[0][3]}", flush=True)

    dbt = args.dbt
    series("dbt parse --no-partial-parse",
           dbt_parse(dbt, project, dbt_dirs, *vars_, "--no-partial-parse"))
    run(dbt_parse(dbt, project, dbt_dirs, *vars_), project, env)
    series("dbt parse (partial)", dbt_parse(dbt, project, dbt_dirs, *vars_))
    check = [args.bulwark, "check", "--all-files", "-q", *vars_]
    series("bulwark check --all-files (cold)", check,
           before=lambda i: shutil.rmtree(cache, ignore_errors=True))
    run(check, project, env)
    series("bulwark check --all-files (warm)", check)
    hook = [args.pre_commit, "run", "bulwark", "--hook-stage", "pre-commit"]
    for n in (1, 10):
        def stage(i: int, n: int = n, cold: bool = False) -> None:
            if cold:
                shutil.rmtree(cache, ignore_errors=True)
            edit(project, n, i, edit_dirs)

        def unstage(i: int) -> None:
            reset(project)

        series(f"pre-commit, {n}-file commit (cold)", hook,
               before=lambda i, stage=stage: stage(i, cold=True), after=unstage)
        run(check, project, env)   # warm the cache again
        stage(99)
        run(hook, project, env)
        reset(project)
        series(f"pre-commit, {n}-file commit (warm)", hook, before=stage, after=unstage)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--adapter", action="append", default=[], metavar="NAME=TYPE")
    ap.add_argument("--vars", action="append", default=[], metavar="NAME=JSON")
    ap.add_argument("--dbt-dir", dest="dbt_dir", action="append", default=[],
                    metavar="NAME=SUBDIR")
    ap.add_argument("--edit-dir", dest="edit_dir", action="append", default=[],
                    metavar="NAME=SUBDIR")
    ap.add_argument("--package", action="append", default=[], metavar="NAME=PKG:GITDIR@REV")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "bulwark-real-bench"))
    ap.add_argument("--bulwark", default=str(Path(sys.executable).with_name("bulwark")))
    ap.add_argument("--dbt", default=str(Path(sys.executable).with_name("dbt")))
    ap.add_argument("--pre-commit", dest="pre_commit",
                    default=str(Path(sys.executable).with_name("pre-commit")))
    ap.add_argument("--out", default=None)
    ap.add_argument("--prepare-only", action="store_true",
                    help="make the fresh copies in --workdir and print their dbt parse command")
    args = ap.parse_args()
    adapters = dict(a.split("=", 1) for a in args.adapter)
    project_vars = {k: ["--vars", v] for k, v in (a.split("=", 1) for a in args.vars)}
    packages: dict[str, list[str]] = {}
    for spec in args.package:
        key, value = spec.split("=", 1)
        packages.setdefault(key, []).append(value)
    dbt_dirs: dict[str, list[str]] = {}
    for spec in args.dbt_dir:
        key, value = spec.split("=", 1)
        dbt_dirs.setdefault(key, []).append(value)
    edit_dirs: dict[str, list[str]] = {}
    for spec in args.edit_dir:
        key, value = spec.split("=", 1)
        edit_dirs.setdefault(key, []).append(value)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    all_rows = []
    for spec in args.project:
        name, path = spec.split("=", 1)
        print(f"{name}: preparing a fresh copy", flush=True)
        subs, vars_ = dbt_dirs.get(name, ["."]), project_vars.get(name, [])
        project, profiles = prepare(name, Path(path).resolve(), work,
                                    adapters.get(name, "duckdb"), packages.get(name, []),
                                    args.bulwark, subs, vars_)
        if args.prepare_only:
            cmd = dbt_parse(args.dbt, project, subs, *vars_, "--no-partial-parse")
            print(f"  {project}: DBT_PROFILES_DIR={profiles} {shlex.join(cmd)}")
            continue
        all_rows.extend(bench_project(name, project, profiles, args, subs, vars_,
                                      edit_dirs.get(name, subs)))
    if args.prepare_only:
        return 0
    lines = [f"- date: {started}; machine: {os.cpu_count()} CPU(s), {platform.platform()}; "
             f"load average at the end: {os.getloadavg()[0]:.1f}",
             f"- median of {args.repeat}; CPU = user+sys of the process tree",
             "",
             "| project | case | wall s (median) | min–max | CPU s (median) | exit | vs dbt full parse (wall / CPU) |",
             "|---|---|---:|---|---:|---:|---:|"]
    base: dict[str, tuple[float, float]] = {}
    for name, label, runs in all_rows:
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        if label == "dbt parse --no-partial-parse":
            base[name] = (wall, cpu)
        ratio = ""
        if name in base and label.startswith("bulwark") and wall > 0 and cpu > 0:
            ratio = f"{base[name][0] / wall:.1f}× / {base[name][1] / cpu:.1f}×"
        lo, hi = min(r[0] for r in runs), max(r[0] for r in runs)
        lines.append(f"| {name} | {label} | {wall:.2f} | {lo:.2f}–{hi:.2f} | {cpu:.2f} | "
                     f"{runs[0][2]} | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
