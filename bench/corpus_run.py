"""Clean-tree verdicts of every hook on the real-project corpus (issue 10, "Proof").

    python bench/corpus_run.py --hooks-repo /path/to/dbt-bulwark --corpus /work/corpus
    python bench/corpus_run.py --hooks-repo . --corpus ~/corpus --only tuva,balboa --packages

For each project of bench/corpus.py (checked out by `corpus.py checkout`), the dbt project
folders are copied into a fresh temp git repository (git init, add, commit: a clean tree)
and every static hook of the hooks repository is run through pre-commit, as a user would:
a .pre-commit-config.yaml with `repo: <hooks repo>` and `rev: <its HEAD>`, then
`pre-commit run <hook> --all-files --verbose` (the hook environment is installed once, in
--pre-commit-home). Also `bulwark check --all-files` (the CLI, from --bulwark).

Without --packages the copy has no dbt_packages/ (a fresh clone). With --packages each
project's packages.yml entries are installed the way `dbt deps` would lay them out
(dbt_packages/<name from the package's own dbt_project.yml>, transitively; `local:`
packages as copies), from the checkouts under <corpus>/_packages (`corpus.py checkout
--packages`); a project whose packages are not all available is marked "partial".

Findings are counted by severity from the hook output (`path:line:col: CODE [severity]
message`; no bracket means error). The bar: no error and no warning on any clean tree.
Writes a Markdown table to stdout and, with --readme, into bench/README.md between the
markers `<!-- corpus-clean:start -->` / `<!-- corpus-clean:end -->`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus

HOOKS = ("fast-compile", "check-contracts", "check-critical-tags", "check-schema-diff")
FINDING = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z]+\d+)"
                     r"(?: \[(?P<sev>error|warning|info)\])? (?P<msg>.*)$")
COPY_IGNORE = shutil.ignore_patterns(".git", "dbt_packages", "dbt_internal_packages", "target",
                                     "logs", ".venv", "venv", "node_modules", "*.duckdb")
BEGIN, END = "<!-- corpus-clean:start -->", "<!-- corpus-clean:end -->"


@dataclass
class HookResult:
    hook: str
    rc: int
    counts: dict[str, int]
    seconds: float
    samples: list[str] = field(default_factory=list)
    note: str = ""


def git(*args: str, cwd: Path, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def hooks_rev(hooks_repo: Path) -> str:
    return git("rev-parse", "HEAD", cwd=hooks_repo)


def hooks_label(hooks_repo: Path, rev: str) -> str:
    """`rev` plus the last commit that changed the hooks themselves (code, manifest, deps)."""
    code = git("log", "-1", "--format=%H", rev, "--", "src", ".pre-commit-hooks.yaml",
               "pyproject.toml", cwd=hooks_repo, check=False)
    if code and code != rev:
        return f"`{rev[:12]}` (hooks code as of `{code[:12]}`; later commits touch bench/docs only)"
    return f"`{rev[:12]}`"


def copy_project(project: corpus.Project, src_root: Path, dest: Path) -> None:
    """Copy the project's dbt folders (relative paths kept) into dest."""
    for sub in project.subdirs + project.extra:
        src = src_root / sub
        target = dest / sub
        if target.exists() and sub != ".":
            continue  # already inside a copied parent
        shutil.copytree(src, target, ignore=COPY_IGNORE, symlinks=True, dirs_exist_ok=True)


def precommit_config(hooks_repo: Path, rev: str, args: tuple[str, ...],
                     hooks: tuple[str, ...] = HOOKS) -> str:
    lines = ["repos:", f"  - repo: {hooks_repo}", f"    rev: {rev}", "    hooks:"]
    for hook in hooks:
        lines.append(f"      - id: {hook}")
        if args:
            lines.append(f"        args: {json.dumps(list(args))}")
    return "\n".join(lines) + "\n"


def init_repo(root: Path, config: str) -> None:
    (root / ".pre-commit-config.yaml").write_text(config)
    git("init", "-q", "-b", "main", cwd=root)
    git("config", "user.email", "corpus@example.invalid", cwd=root)
    git("config", "user.name", "corpus", cwd=root)
    git("config", "commit.gpgsign", "false", cwd=root)
    # dbt_packages/ is never committed (what `dbt deps` writes), whatever .gitignore says
    with (root / ".git" / "info" / "exclude").open("a") as fh:
        fh.write("dbt_packages/\ndbt_internal_packages/\n.bulwark*/\ntarget/\n")
    git("add", "-A", cwd=root)
    git("commit", "-q", "--no-verify", "-m", "clean project", cwd=root)


def _packages_yml_entries(project_dir: Path) -> list[dict]:
    import yaml  # runtime dependency of bulwark; only this helper needs it

    for name in ("packages.yml", "dependencies.yml"):
        path = project_dir / name
        if path.exists():
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError:
                return []
            return [e for e in data.get("packages") or [] if isinstance(e, dict)]
    return []


def _project_name(project_dir: Path) -> str:
    text = (project_dir / "dbt_project.yml").read_text()
    m = re.search(r"^name:\s*['\"]?([A-Za-z0-9_]+)", text, re.M)
    return m.group(1) if m else project_dir.name


def pinned_checkout(key: str, entry: dict, mirror: Path | None, work: Path) -> Path | None:
    """The package at the exact version ``entry`` pins (`version: 0.8.4`), exported from
    its git mirror's tag into ``work``; None when not pinned exactly or no such tag."""
    version = entry.get("version")
    if isinstance(version, list) and len(version) == 1:
        version = version[0]
    if mirror is None or not isinstance(version, (str, int, float)) or \
            not re.fullmatch(r"\d+(\.\d+)*", str(version)) or key not in corpus.PACKAGES:
        return None
    repo = Path(corpus.clone_url(str(mirror), corpus.PACKAGES[key][0]))
    for tag in (str(version), f"v{version}"):
        if git("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}", cwd=repo,
               check=False):
            out = work / f"{key}@{tag}"
            if not out.exists():
                out.mkdir(parents=True)
                archive = subprocess.run(["git", "archive", "--format=tar", tag], cwd=repo,
                                         capture_output=True, check=True).stdout
                subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
            return out
    return None


def install_packages(project_dir: Path, packages_root: Path,
                     mirror: Path | None = None) -> list[str]:
    """Lay out dbt_packages/ like `dbt deps` would; return the names that were missing.
    An exact `version:` is installed from the mirror's tag when it has one (else the
    checkout under packages_root, whatever version it is)."""
    dest = project_dir / "dbt_packages"
    missing: list[str] = []
    todo: list[tuple[Path, dict]] = [(project_dir, e) for e in _packages_yml_entries(project_dir)]
    seen: set[str] = set()
    while todo:
        owner_dir, entry = todo.pop()
        if "local" in entry:
            src = (owner_dir / str(entry["local"])).resolve()
            if not (src / "dbt_project.yml").exists():
                missing.append(f"local:{entry['local']}")
                continue
        else:
            spec = str(entry.get("package") or entry.get("git") or "")
            key = corpus.PACKAGE_ALIASES.get(spec)
            if key is None:
                for alias, name in corpus.PACKAGE_ALIASES.items():
                    if spec.rstrip("/").removesuffix(".git").endswith(alias.split("/")[1]):
                        key = name
                if key is None:
                    missing.append(spec)
                    continue
            src = pinned_checkout(key, entry, mirror, Path(tempfile.gettempdir()) / "bulwark-corpus-pinned") \
                or packages_root / key
            if not (src / "dbt_project.yml").exists():
                missing.append(spec)
                continue
        name = _project_name(src)
        if name in seen:
            continue
        seen.add(name)
        dest.mkdir(exist_ok=True)
        shutil.copytree(src, dest / name, ignore=COPY_IGNORE, symlinks=True, dirs_exist_ok=True)
        todo.extend((src, e) for e in _packages_yml_entries(src))
    return missing


def count_models(root: Path, project: corpus.Project) -> int:
    """SQL/Python files under a `models` folder of the project's dbt folders (no packages)."""
    files: set[Path] = set()
    for sub in project.subdirs:
        for dirpath, dirnames, filenames in os.walk(root / sub):
            dirnames[:] = [d for d in dirnames if d not in ("dbt_packages", "target", ".git")]
            if "models" in Path(dirpath).relative_to(root).parts:
                files.update(Path(dirpath) / f for f in filenames if f.endswith((".sql", ".py")))
    return len(files)


def parse_findings(text: str) -> tuple[dict[str, int], list[str]]:
    counts = {"error": 0, "warning": 0, "info": 0}
    samples: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        m = FINDING.match(line.strip())
        if not m:
            continue
        if line in seen:  # the same loader finding printed by several passes
            continue
        seen.add(line)
        sev = m.group("sev") or "error"
        counts[sev] += 1
        if sev != "info" and len(samples) < 5:
            samples.append(line.strip()[:300])
    return counts, samples


def run_precommit(root: Path, hook: str, env: dict[str, str], precommit: str,
                  timeout: int) -> HookResult:
    start = time.perf_counter()
    try:
        proc = subprocess.run([precommit, "run", hook, "--all-files", "--verbose", "--color", "never"],
                              cwd=root, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return HookResult(hook, -1, {"error": 0, "warning": 0, "info": 0},
                          time.perf_counter() - start, note="TIMEOUT")
    took = time.perf_counter() - start
    counts, samples = parse_findings(proc.stdout)
    note = ""
    if "Traceback" in proc.stdout or "Traceback" in proc.stderr:
        note = "TRACEBACK"
    elif proc.returncode and not any(counts.values()):
        note = f"rc={proc.returncode}: {(proc.stdout + proc.stderr).strip()[-200:]}"
    return HookResult(hook, proc.returncode, counts, took, samples, note)


def run_cli(root: Path, bulwark: str, args: tuple[str, ...], timeout: int) -> HookResult:
    start = time.perf_counter()
    try:
        proc = subprocess.run([bulwark, "check", "--all-files", "--format", "json", *args],
                              cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return HookResult("bulwark check", -1, {"error": 0, "warning": 0, "info": 0},
                          time.perf_counter() - start, note="TIMEOUT")
    took = time.perf_counter() - start
    counts = {"error": 0, "warning": 0, "info": 0}
    samples: list[str] = []
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return HookResult("bulwark check", proc.returncode, counts, took,
                          note="no JSON: " + (proc.stderr or proc.stdout).strip()[-200:])
    seen: set[tuple] = set()
    for layer in data.get("layers", []):
        for f in layer.get("findings", []):
            ident = (f.get("path"), f.get("line"), f.get("code"), f.get("message"))
            if ident in seen:
                continue
            seen.add(ident)
            sev = f.get("severity", "error")
            counts[sev] = counts.get(sev, 0) + 1
            if sev != "info" and len(samples) < 5:
                samples.append(f"{f.get('path')}:{f.get('line')}:{f.get('col')}: {f.get('code')} "
                               f"[{sev}] {str(f.get('message'))[:200]}")
    return HookResult("bulwark check", proc.returncode, counts, took, samples)


def precommit_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PRE_COMMIT_HOME"] = str(home)
    env["DO_NOT_TRACK"] = "1"
    env.pop("PRE_COMMIT_FROM_REF", None)
    env.pop("PRE_COMMIT_TO_REF", None)
    return env


def run_project(project: corpus.Project, args: argparse.Namespace, rev: str,
                with_packages: bool) -> tuple[int, list[HookResult], str]:
    src = Path(args.corpus) / project.name
    workdir = Path(tempfile.mkdtemp(prefix=f"{project.name}-", dir=args.workdir))
    try:
        copy_project(project, src, workdir)
        init_repo(workdir, precommit_config(Path(args.hooks_repo).resolve(), rev, project.hook_args))
        pkg_note = ""
        if with_packages:
            missing: list[str] = []
            for sub in project.subdirs:
                missing += install_packages(workdir / sub, Path(args.corpus) / "_packages",
                                            Path(args.mirror) if args.mirror else None)
            pkg_note = ("all installed" if not missing
                        else f"partial (missing: {', '.join(sorted(set(missing)))})")
        models = count_models(workdir, project)
        env = precommit_env(Path(args.pre_commit_home))
        results = [run_precommit(workdir, hook, env, args.pre_commit, args.timeout) for hook in HOOKS]
        if args.bulwark:
            results.append(run_cli(workdir, args.bulwark, project.hook_args, args.timeout))
        return models, results, pkg_note
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def table(rows: list[tuple[corpus.Project, str, int, list[HookResult], str]]) -> str:
    out = ["| project | adapter | model files | dbt_packages | hook | errors / warnings / infos | time |",
           "|---|---|---:|---|---|---|---:|"]
    for project, mode, models, results, _note in rows:
        for r in results:
            c = r.counts
            cell = f"{c['error']} / {c['warning']} / {c['info']}"
            if r.note:
                cell += f" ({r.note[:80]})"
            out.append(f"| {project.name} | {project.adapter} | {models} | {mode} | {r.hook} | "
                       f"{cell} | {r.seconds:.1f} s |")
    return "\n".join(out)


def write_readme(readme: Path, body: str) -> None:
    text = readme.read_text() if readme.exists() else ""
    block = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


LOG_LINE = re.compile(r"^# (?P<project>\S+) \[(?P<mode>[^\]]*)\] (?P<hook>[^:]+): rc=(?P<rc>-?\d+) "
                      r"(?P<counts>\{[^}]*\}) (?P<secs>[\d.]+)s ?(?P<note>.*?)(  <-- ABOVE INFO)?$")


def from_logs(args: argparse.Namespace) -> int:
    """The table from the per-hook lines a run prints on stderr."""
    import ast

    known = {p.name: p for p in corpus.PROJECTS}
    rows: dict[tuple[str, str], list[HookResult]] = {}
    for log in args.from_log:
        for line in Path(log).read_text().splitlines():
            m = LOG_LINE.match(line)
            if not m or m.group("project") not in known:
                continue
            r = HookResult(m.group("hook"), int(m.group("rc")), ast.literal_eval(m.group("counts")),
                           float(m.group("secs")), note=m.group("note").strip())
            hooks = rows.setdefault((m.group("project"), m.group("mode")), [])
            hooks[:] = [h for h in hooks if h.hook != r.hook]  # a later log replaces a row
            hooks.append(r)
    out = []
    for (name, mode), results in rows.items():
        project = known[name]
        out.append((project, mode, count_models(Path(args.corpus) / name, project), results, ""))
    above = sum(1 for *_x, results, _n in out for r in results
                if r.counts["error"] or r.counts["warning"] or r.note)
    rev = hooks_rev(Path(args.hooks_repo))
    body = (f"Measured with the hooks of dbt-bulwark {hooks_label(Path(args.hooks_repo), rev)} "
            f"(`bench/corpus_run.py`; "
            f"table rebuilt from the run logs). Rows above info or with a note: **{above}** of "
            f"{sum(len(r[3]) for r in out)}.\n\n" + table(out))
    print(body)
    if args.readme:
        write_readme(Path(args.readme), body)
    return 0


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hooks-repo", default=str(here.parent),
                    help="the dbt-bulwark repository whose HEAD provides the hooks")
    ap.add_argument("--corpus", default="/work/corpus", help="where `corpus.py checkout` cloned")
    ap.add_argument("--only", help="comma-separated project names")
    ap.add_argument("--packages", choices=("without", "with", "both"), default="without",
                    help="run without dbt_packages/ (fresh clone), with, or both")
    ap.add_argument("--with-packages-only",
                    help="comma-separated projects to also run with packages (default: all)")
    ap.add_argument("--bulwark", default=str(Path(sys.executable).with_name("bulwark")),
                    help="bulwark CLI for the `bulwark check` row ('' to skip)")
    ap.add_argument("--pre-commit", default=str(Path(sys.executable).with_name("pre-commit")))
    ap.add_argument("--pre-commit-home", default=os.path.join(tempfile.gettempdir(),
                                                              "bulwark-bench-pre-commit"))
    ap.add_argument("--mirror", help="folder of git mirrors (<owner>+<name>/repo): a "
                                     "package pinned to an exact version is installed at "
                                     "that tag when the mirror has it")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--keep", action="store_true", help="keep the temp repositories")
    ap.add_argument("--readme", help="write the table into this Markdown file (between markers)")
    ap.add_argument("--json", help="also write raw results here")
    ap.add_argument("--from-log", action="append", default=[], metavar="LOG",
                    help="only rebuild the table from the stderr log(s) of earlier (or "
                         "interrupted) runs (repeatable)")
    args = ap.parse_args(argv)
    if args.from_log:
        return from_logs(args)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    rev = hooks_rev(Path(args.hooks_repo))
    projects = corpus.by_name(args.only)
    with_only = set((args.with_packages_only or "").split(",")) - {""}
    rows = []
    raw = []
    for project in projects:
        if not (Path(args.corpus) / project.name).exists():
            print(f"# {project.name}: not checked out, skipped", file=sys.stderr)
            continue
        modes = {"without": [False], "with": [True], "both": [False, True]}[args.packages]
        for with_packages in modes:
            if with_packages and with_only and project.name not in with_only:
                continue
            models, results, note = run_project(project, args, rev, with_packages)
            mode = ("with: " + note) if with_packages else "none (fresh clone)"
            rows.append((project, mode, models, results, note))
            for r in results:
                flag = "  <-- ABOVE INFO" if r.counts["error"] or r.counts["warning"] else ""
                print(f"# {project.name} [{mode}] {r.hook}: rc={r.rc} {r.counts} "
                      f"{r.seconds:.1f}s {r.note}{flag}", file=sys.stderr)
                for s in r.samples:
                    print(f"#     {s}", file=sys.stderr)
                raw.append({"project": project.name, "packages": mode, "models": models,
                            "hook": r.hook, "rc": r.rc, "counts": r.counts,
                            "seconds": round(r.seconds, 2), "samples": r.samples, "note": r.note})
    above = sum(1 for *_x, results, _n in rows for r in results
                if r.counts["error"] or r.counts["warning"] or r.note)
    body = (f"Measured with the hooks of dbt-bulwark {hooks_label(Path(args.hooks_repo), rev)} "
            f"(`bench/corpus_run.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). "
            f"Rows above info or with a note: **{above}** of "
            f"{sum(len(r[3]) for r in rows)}.\n\n" + table(rows))
    print(body)
    if args.readme:
        write_readme(Path(args.readme), body)
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 1 if above else 0


if __name__ == "__main__":
    sys.exit(main())
