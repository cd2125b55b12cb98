#!/usr/bin/env python3
"""Benchmark bulwark against dbt on generated projects.

Usage:
    python bench/run_bench.py [--sizes 500,2000] [--repeat 3] [--out bench/results.md]
                              [--hooks] [--cases PATTERN[,PATTERN...]] [--seed 42]

For each size, a synthetic project is generated into bench/out/p<size>
(git-ignored) with bench/generate_project.py, then every selected *case* is
timed: wall clock around the whole process (start-up included), median of
--repeat runs. Untimed steps (project changes, warm-ups, cache clearing) run
before the timed runs. A failing command is recorded in the table, it does
not stop the run.

Adding a row = appending a ``Case`` to ``CASES`` (or ``HOOK_CASES``, which
only run with --hooks). A case is a list of commands (run one after the other,
timed together, stopping at the first failure), with placeholders:

    {bulwark} {dbt}    executables (default: next to this Python, else PATH)
    {project}          the generated project directory (also the cwd)
    {changed}          expands to the K paths changed by ``setup="change:K"``

``setup`` names an untimed step run once before the case: ``change:K`` applies
``generate_project.py --change K`` (and the change is reverted afterwards),
``dbt-parse`` runs a full ``dbt parse`` (leaves target/partial_parse.msgpack).
``warmup`` runs the case's commands N times untimed before measuring.
``before_each`` names an untimed step run before every timed run
(``clear-cache`` deletes the project's bulwark cache directories).
``vs`` names the dbt case whose median is divided by this case's median in
the "dbt/bulwark" column.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
GENERATOR = BENCH_DIR / "generate_project.py"


@dataclass
class Case:
    name: str
    tool: str  # "bulwark" | "dbt"
    cmds: list[list[str]]
    setup: str | None = None
    warmup: int = 0
    before_each: str | None = None
    vs: str | None = None
    note: str = ""
    # exit codes that count as a completed run; default: 0, plus 1 (= findings
    # reported, EXIT_FINDINGS) for bulwark hooks
    ok_rcs: tuple[int, ...] | None = None

    def accepts(self, rc: int) -> bool:
        return rc in (self.ok_rcs or ((0, 1) if self.tool == "bulwark" else (0,)))


# --------------------------------------------------------------------- cases
LS = ["{bulwark}", "ls", "--output", "json", "--project-dir", "{project}"]

CASES: list[Case] = [
    Case(
        "bulwark ls (cold)",
        "bulwark",
        [LS + ["--no-cache"]],
        before_each="clear-cache",
        vs="dbt parse (full)",
    ),
    Case(
        "bulwark ls (warm)",
        "bulwark",
        [LS],
        warmup=1,
        vs="dbt parse (partial)",
        note="after one warm-up run that fills the cache",
    ),
    Case(
        "bulwark ls models (warm)",
        "bulwark",
        [["{bulwark}", "ls", "--resource-type", "model", "--indirect-selection", "empty",
          "--project-dir", "{project}"]],
        warmup=1,
        vs="dbt parse (partial)",
        note="the project model without generated data-test nodes; names only",
    ),
    Case("dbt parse (full)", "dbt", [["{dbt}", "parse", "--no-partial-parse"]]),
    Case(
        "dbt parse (partial)",
        "dbt",
        [["{dbt}", "parse"]],
        setup="dbt-parse",
        note="after a full parse; nothing changed",
    ),
]

FC = ["{bulwark}", "fast-compile", "--project-dir", "{project}"]
HOOK_CASES: list[Case] = [
    Case(
        "dbt parse && dbt compile",
        "dbt",
        [["{dbt}", "parse"], ["{dbt}", "compile"]],
        setup="change:10",
        note="10 files changed; partial parse state from earlier cases",
    ),
    Case(
        "bulwark fast-compile 10 files (cold)",
        "bulwark",
        [FC + ["--no-cache", "{changed}"]],
        setup="change:10",
        before_each="clear-cache",
        vs="dbt parse && dbt compile",
    ),
    Case(
        "bulwark fast-compile 10 files (warm)",
        "bulwark",
        [FC + ["{changed}"]],
        setup="change:10",
        warmup=1,
        vs="dbt parse && dbt compile",
    ),
    Case(
        "bulwark fast-compile --all-files (cold)",
        "bulwark",
        [FC + ["--no-cache", "--all-files"]],
        before_each="clear-cache",
        vs="dbt parse (full)",
    ),
    Case(
        "bulwark fast-compile --all-files (warm)",
        "bulwark",
        [FC + ["--all-files"]],
        warmup=1,
        vs="dbt parse (partial)",
    ),
    Case(
        "bulwark check-contracts (all)",
        "bulwark",
        [["{bulwark}", "check-contracts", "--all-files", "--project-dir", "{project}"]],
        warmup=1,
        vs="dbt parse (partial)",
    ),
    Case(
        "bulwark check-contracts 10 files (warm)",
        "bulwark",
        [["{bulwark}", "check-contracts", "--project-dir", "{project}", "{changed}"]],
        setup="change:10",
        warmup=1,
        vs="dbt parse (partial)",
    ),
    Case(
        "bulwark check-schema-diff --base HEAD",
        "bulwark",
        [
            [
                "{bulwark}",
                "check-schema-diff",
                "--base",
                "HEAD",
                "--project-dir",
                "{project}",
                "{changed}",
            ]
        ],
        setup="change:10",
        warmup=1,
        vs="dbt parse (partial)",
    ),
    Case(
        "bulwark check-critical-tags 10 files (warm)",
        "bulwark",
        [["{bulwark}", "check-critical-tags", "--project-dir", "{project}", "{changed}"]],
        setup="change:10",
        warmup=1,
        vs="dbt parse (partial)",
        note="compares with HEAD; the warm-up fills the parse cache and the base summary",
    ),
    Case(
        "bulwark critical suggest",
        "bulwark",
        [["{bulwark}", "critical", "suggest", "--top", "20", "--project-dir", "{project}"]],
        warmup=1,
        vs="dbt parse (partial)",
    ),
    Case(
        "bulwark ci --fast",
        "bulwark",
        [["{bulwark}", "ci", "--fast", "--project-dir", "{project}"]],
        setup="change:10",
        warmup=1,
        vs="dbt parse && dbt compile",
    ),
]


# ---------------------------------------------------------------- machinery
@dataclass
class Result:
    size: int
    case: Case
    times: list[float] = field(default_factory=list)
    error: str | None = None
    stub: bool = False
    load: float | None = None  # 1-minute load average when the case started
    findings: bool = False  # a run exited 1: the hook reported findings

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None


class Runner:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.python = sys.executable
        self.bulwark = args.bulwark or _exe("bulwark")
        self.dbt = args.dbt or _exe("dbt")
        self.project: Path = Path()
        self.size = 0
        self.changed: list[str] = []

    # -- environment
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DO_NOT_TRACK": "1",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_PROFILES_DIR": str(self.project / "profiles"),
                "BENCH_DUCKDB_PATH": str(self.project / "bench.duckdb"),
            }
        )
        return env

    def expand(self, cmd: list[str]) -> list[str]:
        out: list[str] = []
        for part in cmd:
            if part == "{changed}":
                out.extend(self.changed)
            else:
                out.append(
                    part.format(bulwark=self.bulwark, dbt=self.dbt, project=str(self.project))
                )
        return out

    def run(self, argv: list[str], timeout: float) -> tuple[int, str]:
        try:
            proc = subprocess.run(
                argv,
                cwd=self.project,
                env=self.env(),
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
            )
        except subprocess.TimeoutExpired:
            return 124, f"timeout after {timeout:.0f}s"
        except OSError as exc:
            return 127, str(exc)
        return proc.returncode, proc.stdout + "\n" + proc.stderr

    # -- untimed steps
    def step(self, name: str | None) -> None:
        if not name:
            return
        if name.startswith("change:"):
            k = int(name.split(":", 1)[1])
            proc = subprocess.run(
                [
                    self.python,
                    str(GENERATOR),
                    str(self.size),
                    str(self.project),
                    "--seed",
                    str(self.args.seed),
                    "--change",
                    str(k),
                ],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.changed = proc.stdout.split()
        elif name == "dbt-parse":
            rc, out = self.run([self.dbt, "parse"], self.args.timeout)
            if rc:
                raise RuntimeError(f"setup dbt parse failed: {_last_line(out)}")
        elif name == "clear-cache":
            for d in (self.project / ".bulwark-cache", self.project / "target" / "bulwark"):
                shutil.rmtree(d, ignore_errors=True)
        else:
            raise ValueError(f"unknown step {name!r}")

    def revert(self) -> None:
        if self.changed:
            subprocess.run(
                ["git", "-C", str(self.project), "checkout", "-q", "HEAD", "--", "models"],
                check=True,
            )
            self.changed = []

    # -- one case
    def measure(self, case: Case) -> Result:
        res = Result(self.size, case, load=_load1())
        cmds = lambda: [self.expand(c) for c in case.cmds]  # noqa: E731 (changed files are known late)
        try:
            self.step(case.setup)
            for _ in range(case.warmup):
                for argv in cmds():
                    self.run(argv, self.args.timeout)
            for _ in range(self.args.repeat):
                self.step(case.before_each)
                t0 = time.perf_counter()
                for argv in cmds():
                    rc, out = self.run(argv, self.args.timeout)
                    if rc == 1 and case.accepts(rc):
                        res.findings = True
                    if not case.accepts(rc):
                        res.error = f"rc={rc}: {_last_line(out)}"
                        break
                    if "not implemented yet" in out:
                        res.stub = True
                dt = time.perf_counter() - t0
                if res.error:
                    break
                res.times.append(dt)
        except Exception as exc:  # noqa: BLE001 - a broken case must not stop the run
            res.error = f"setup: {exc}"
        finally:
            if case.setup and case.setup.startswith("change:"):
                self.revert()
        return res

    def generate(self, size: int) -> None:
        self.size = size
        self.project = (self.args.workdir / f"p{size}").resolve()
        subprocess.run(
            [
                self.python,
                str(GENERATOR),
                str(size),
                str(self.project),
                "--seed",
                str(self.args.seed),
            ],
            check=True,
        )


def _exe(name: str) -> str:
    near = Path(sys.executable).parent / name
    if near.exists():
        return str(near)
    found = shutil.which(name)
    return found or name


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[-1] if lines else "(no output)"
    line = line.replace("|", "\\|")
    return line[:160]


def _version_of(python: str, dist: str) -> str:
    try:
        out = subprocess.run(
            [python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            timeout=60,
        )
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _dbt_python(dbt: str) -> str:
    """The interpreter of the dbt entry point (its shebang), to read package versions."""
    try:
        first = Path(dbt).read_text(errors="replace").splitlines()[0]
        if first.startswith("#!"):
            return first[2:].strip().split()[0]
    except (OSError, IndexError):
        pass
    return sys.executable


def _load1() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def render(
    results: list[Result], runner: Runner, args: argparse.Namespace, machine: dict[str, str]
) -> str:
    medians = {(r.size, r.case.name): r.median for r in results}
    rows = [
        "| size | case | tool | median s | min–max s | runs | dbt/bulwark | load | note |",
        "|---:|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in results:
        if r.error:
            med, span, ratio = "FAIL", "", "—"
            note = f"{r.error}"
        else:
            med = _fmt(r.median)
            span = f"{min(r.times):.2f}–{max(r.times):.2f}" if r.times else ""
            ratio = "—"
            ref = medians.get((r.size, r.case.vs)) if r.case.vs else None
            if ref and r.median and not r.stub:
                ratio = f"{ref / r.median:.1f}× (vs {r.case.vs})"
            note = r.case.note + ("; stub: prints 'not implemented yet'" if r.stub else "")
            note += "; exit 1 (findings reported)" if r.findings else ""
        load = "?" if r.load is None else f"{r.load:.1f}"
        rows.append(
            f"| {r.size} | {r.case.name} | {r.case.tool} | {med} | {span} | {len(r.times)} | {ratio} | {load} | {note.strip('; ')} |"
        )
    table = "\n".join(rows)

    cmd_lines = []
    seen = set()
    for r in results:
        if r.case.name in seen:
            continue
        seen.add(r.case.name)
        shown = " && ".join(
            " ".join(p if p.startswith("{") else shlex.quote(p) for p in c) for c in r.case.cmds
        ).replace("{changed}", "<changed files>")
        extra = []
        if r.case.setup:
            extra.append(f"setup: {r.case.setup}")
        if r.case.warmup:
            extra.append(f"warm-up runs: {r.case.warmup}")
        if r.case.before_each:
            extra.append(f"before each run: {r.case.before_each}")
        cmd_lines.append(
            f"- **{r.case.name}**: `{shown}`" + (f" ({'; '.join(extra)})" if extra else "")
        )

    head = [
        "# dbt-bulwark benchmark results",
        "",
        f"- date: {machine['date']}",
        f"- machine: {machine['nproc']} CPU(s), {machine['cpu']}, {machine['platform']}",
        f"- python: {machine['python']}; dbt-core {machine['dbt']}, dbt-duckdb {machine['dbt_duckdb']}; "
        f"dbt-bulwark {machine['bulwark']}",
        f"- invocation: `{machine['argv']}`",
        f"- 1-minute load average: {machine['load_start']} at start, {_fmt(_load1())} at the end "
        f"(the `load` column is taken as each case starts; above {machine['nproc']} the machine "
        "was busy with other work and timings are inflated)",
        f"- projects: `bench/generate_project.py <size> {args.workdir}/p<size> --seed {args.seed}` "
        f"(wall clock incl. process start-up, median of {args.repeat} run(s))",
        f"- executables: bulwark=`{runner.bulwark}`, dbt=`{runner.dbt}`; cwd = project; "
        "DBT_PROFILES_DIR=<project>/profiles",
        "",
        table,
        "",
        "## Command lines",
        "",
        "`{project}` is the generated project; `<changed files>` are the paths printed by "
        "`generate_project.py <size> <project> --change 10`.",
        "",
        *cmd_lines,
        "",
    ]
    return "\n".join(head)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="500,2000", help="comma-separated model counts")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case (median reported)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "results.md")
    ap.add_argument(
        "--hooks", action="store_true", help="also run the hook cases (fast-compile, ...)"
    )
    ap.add_argument(
        "--cases",
        default=None,
        help="only cases whose name matches one of these comma-separated fnmatch patterns",
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", type=Path, default=BENCH_DIR / "out")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    ap.add_argument("--bulwark", default=None, help="bulwark executable")
    ap.add_argument("--dbt", default=None, help="dbt executable")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    cases = CASES + (HOOK_CASES if args.hooks else [])
    if args.cases:
        pats = [p.strip() for p in args.cases.split(",")]
        cases = [c for c in cases if any(fnmatch.fnmatch(c.name, p) for p in pats)]
    # dbt reference cases first so that ratios and partial-parse state are available
    cases.sort(key=lambda c: 0 if c.tool == "dbt" else 1)

    runner = Runner(args)
    dbt_py = _dbt_python(runner.dbt)
    machine = {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "load_start": _fmt(_load1()),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "dbt": _version_of(dbt_py, "dbt-core"),
        "dbt_duckdb": _version_of(dbt_py, "dbt-duckdb"),
        "bulwark": _version_of(sys.executable, "dbt-bulwark"),
        "argv": " ".join(
            shlex.quote(a) for a in ["python", "bench/run_bench.py", *(argv or sys.argv[1:])]
        ),
    }

    results: list[Result] = []
    for size in sizes:
        print(f"== size {size}: generating", file=sys.stderr, flush=True)
        runner.generate(size)
        for case in cases:
            print(f"   {case.name} ...", end="", file=sys.stderr, flush=True)
            res = runner.measure(case)
            results.append(res)
            print(f" {res.error or _fmt(res.median) + ' s'}", file=sys.stderr, flush=True)

    text = render(results, runner, args, machine)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
