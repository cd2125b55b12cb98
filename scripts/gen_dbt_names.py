"""Generate src/dbt_bulwark/sql/dbt_names_data.py: the names dbt itself provides to Jinja.

* context members: every ``@contextmember``/``@contextproperty`` of dbt-core's context
  classes (``dbt.context.*``), read from the installed dbt-core;
* global macros: every macro, test and materialization of the global project that the
  installed dbt-core loads (``dbt.include.global_project``, shipped by dbt-adapters) and of
  every installed adapter (``dbt.include.<adapter>``);
* optionally, adapters that are not installed, read from a checkout (or bare mirror) of
  their repositories: ``--adapters-repo DIR`` (e.g. dbt-labs/dbt-adapters, which holds
  postgres, snowflake, bigquery, redshift, spark, athena). Their names are only data.

Run: python scripts/gen_dbt_names.py [--adapters-repo DIR ...]
tests/test_dbt_names_oracle.py checks the output against the installed dbt-core.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from dbt_bulwark.project.macros import MACRO_DEF_RE, top_level_blocks  # noqa: E402

OUT = ROOT / "src" / "dbt_bulwark" / "sql" / "dbt_names_data.py"
_MAT_RE = re.compile(r"{%-?\s*materialization\s+(\w+)\s*(?:,\s*adapter\s*=\s*['\"](\w+)['\"])?")


def macro_names(text: str) -> set[str]:
    """Names a macro file defines, as dbt registers them."""
    text = top_level_blocks(text)
    out: set[str] = set()
    for m in MACRO_DEF_RE.finditer(text):
        kind, name = m.group(1), m.group(2)
        if kind == "macro":
            out.add(name)
        elif kind == "test":
            out.add(f"test_{name}")
    for m in _MAT_RE.finditer(text):
        out.add(f"materialization_{m.group(1)}_{m.group(2) or 'default'}")
    return out


def context_members() -> set[str]:
    names: set[str] = set()
    import dbt.context

    for info in pkgutil.iter_modules(dbt.context.__path__, "dbt.context."):
        try:
            mod = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a context module needing what is not installed
            continue
        for obj in vars(mod).values():
            if inspect.isclass(obj) and isinstance(getattr(obj, "_context_members_", None),
                                                   dict):
                names.update(obj._context_members_)
    return {n for n in names if not n.startswith("_")}


def installed_macros() -> tuple[set[str], dict[str, set[str]]]:
    import dbt.include

    glob: set[str] = set()
    adapters: dict[str, set[str]] = {}
    for base in dbt.include.__path__:
        for sub in sorted(Path(base).iterdir()):
            if not (sub / "macros").is_dir() or sub.name == "starter_project":
                continue
            names: set[str] = set()
            for f in sorted(sub.rglob("*.sql")):   # macros/ and tests/generic/
                names |= macro_names(f.read_text(encoding="utf-8"))
            if sub.name == "global_project":
                glob |= names
            else:
                adapters.setdefault(sub.name, set()).update(names)
    return glob, adapters


def repo_macros(repo: Path) -> dict[str, set[str]]:
    """Adapter macros from a checkout or a bare git directory: include/<adapter>/**.sql."""
    pat = re.compile(r"(?:^|/)dbt/include/(\w+)/(?:macros|tests)/.+\.sql$")
    out: dict[str, set[str]] = {}
    git = ["git", f"--git-dir={repo}"] if not (repo / ".git").exists() else \
        ["git", "-C", str(repo)]
    files = subprocess.run([*git, "ls-tree", "-r", "--name-only", "HEAD"], check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for path in files:
        m = pat.search(path)
        if not m or m.group(1) == "global_project":
            continue
        text = subprocess.run([*git, "show", f"HEAD:{path}"], check=True,
                              capture_output=True, text=True).stdout
        out.setdefault(m.group(1), set()).update(macro_names(text))
    return out


def _fmt(names: set[str], indent: str = "") -> str:
    lines, line = [], ""
    for w in sorted(names):
        item = f'"{w}",'
        if line and len(indent) + 4 + len(line) + len(item) + 1 > 96:
            lines.append(line)
            line = ""
        line = f"{line} {item}" if line else item
    if line:
        lines.append(line)
    body = "".join(f"\n{indent}    {ln}" for ln in lines)
    return f"frozenset({{{body}\n{indent}}})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapters-repo", action="append", type=Path, default=[])
    ap.add_argument("--check", action="store_true", help="exit 1 if the file would change")
    args = ap.parse_args(argv)
    import dbt.version

    glob, adapters = installed_macros()
    installed = sorted(adapters)
    for repo in args.adapters_repo:
        for name, names in repo_macros(repo).items():
            adapters.setdefault(name, set()).update(names)
    parts = [
        '"""Names dbt provides to Jinja. GENERATED by scripts/gen_dbt_names.py: do not edit."""',
        "",
        "from __future__ import annotations",
        "",
        f'DBT_CORE_VERSION = "{dbt.version.__version__}"',
        f"INSTALLED_ADAPTERS = {tuple(installed)!r}",
        "",
        "# @contextmember / @contextproperty of dbt-core's context classes",
        f"CONTEXT_MEMBERS: frozenset[str] = {_fmt(context_members())}",
        "",
        "# macros, tests and materializations of dbt's global project",
        f"GLOBAL_PROJECT_MACROS: frozenset[str] = {_fmt(glob)}",
        "",
        "# macros of each adapter's own project (installed ones, and --adapters-repo)",
        "ADAPTER_MACROS: dict[str, frozenset[str]] = {",
    ]
    for name in sorted(adapters):
        parts.append(f'    "{name}": {_fmt(adapters[name], "    ")},')
    parts.append("}")
    text = "\n".join(parts) + "\n"
    if args.check:
        return 0 if OUT.exists() and OUT.read_text() == text else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(glob)} global macros, "
          f"{len(adapters)} adapters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
