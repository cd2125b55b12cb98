"""Fault injection on the real-project corpus, through pre-commit (issue 10, "Proof").

    python bench/fault_injection.py --hooks-repo /path/to/dbt-bulwark --corpus /work/corpus
    python bench/fault_injection.py --hooks-repo . --only balboa,jaffle-shop --per-class 3

For each project (bench/corpus.py; checked out by `corpus.py checkout`): the project's dbt
folders are copied into a fresh git repository and committed (the base: a clean project, no
dbt_packages/, as after `git clone`), with a .pre-commit-config.yaml that points at the hooks
repository (`repo: <path>`, `rev: <its HEAD>`; fast-compile, check-contracts,
check-critical-tags, check-schema-diff, each with the project's `hook_args`). Then, one at a
time, a real edit is made and staged (`git add -A`, deletions with it) and `pre-commit run`
runs at the pre-commit stage (the base is HEAD); the tree is reset to the base afterwards.

Fault classes (a caught fault = pre-commit exits non-zero with at least one error finding that the
clean base (`pre-commit run --all-files` before any edit) does not have; a
crash is reported as such and is not a catch):
  ref_typo, deleted_model_referenced, jinja_syntax, sql_missing_comma,
  sql_misspelled_keyword, sql_unclosed_paren, column_removed_downstream,
  contract_column_renamed, contract_column_retyped, contract_column_removed,
  contract_disabled, critical_tag_removed, undeclared_var, ref_cycle, yaml_bad_indent
Benign classes (flagged = pre-commit exits non-zero):
  benign_comment, benign_whitespace, benign_description, benign_new_column,
  benign_new_leaf_model

Sites are picked automatically from the project (a model with a downstream ref(), a
contracted model in YAML, ...), deterministically (--seed), at most --per-class per class
and project. A class with no site in a project is listed as such. critical_tag_removed
needs a critical model: real projects have none, so its base gets one more commit first
(`{{ config(tags=['critical']) }}` on a model with downstream refs, plus a bulwark.yml that
relaxes the protections that tag would require), and a control edit on that base (a
comment in the same model) must pass, else the site is reported as "control failed".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus
import corpus_run

FAULTS = (
    "ref_typo", "deleted_model_referenced", "jinja_syntax", "sql_missing_comma",
    "sql_misspelled_keyword", "sql_unclosed_paren", "column_removed_downstream",
    "contract_column_renamed", "contract_column_retyped", "contract_column_removed",
    "contract_disabled", "critical_tag_removed", "undeclared_var", "ref_cycle",
    "yaml_bad_indent",
)
BENIGN = ("benign_comment", "benign_whitespace", "benign_description", "benign_new_column",
          "benign_new_leaf_model")
REF = re.compile(r"""\{\{\s*ref\(\s*['"]([A-Za-z0-9_]+)['"]\s*\)\s*\}\}""")
SOURCE = re.compile(r"\bsource\s*\(")
SQL_WORDS = {"from", "where", "group", "order", "having", "union", "left", "right", "inner",
             "join", "on", "limit", "qualify", "window", "select", "with", "and", "or", "end",
             "when", "then", "else", "case", "as", "cross", "full", "outer", "except",
             "intersect", "lateral", "using", "distinct"}
BEGIN, END = "<!-- corpus-faults:start -->", "<!-- corpus-faults:end -->"


# ----------------------------------------------------------------------------- project scan
@dataclass
class Model:
    name: str
    path: str  # repo-relative
    text: str
    refs: list[str]
    dbt_dir: str


@dataclass
class Contract:
    model: str
    yml: str  # repo-relative YAML path
    start: int  # line index of `- name: <model>`
    end: int  # exclusive
    columns: list[tuple[str, int, int, int | None]]  # (name, start, end, data_type line)
    enforced_line: int | None


@dataclass
class DbtProject:
    dir: str
    models: dict[str, Model] = field(default_factory=dict)
    other_names: set[str] = field(default_factory=set)  # seeds, snapshots
    ymls: list[str] = field(default_factory=list)
    contracts: list[Contract] = field(default_factory=list)

    def downstream(self, name: str) -> list[Model]:
        return [m for m in self.models.values() if name in m.refs and m.name != name]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _paths(cfg: dict, key: str, default: list[str]) -> list[str]:
    value = cfg.get(key)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return default


def scan(root: Path, project: corpus.Project) -> list[DbtProject]:
    import yaml

    out: list[DbtProject] = []
    for sub in project.subdirs:
        base = root / sub
        try:
            cfg = yaml.safe_load(_read(base / "dbt_project.yml")) or {}
        except yaml.YAMLError:
            cfg = {}
        dp = DbtProject(sub)
        set_vars = _set_vars(cfg.get("vars"))
        nested = {(root / o).resolve() for o in project.subdirs if o != sub}
        for mdir in _paths(cfg, "model-paths", ["models"]):
            for dirpath, dirnames, filenames in os.walk(base / mdir):
                dirnames[:] = sorted(d for d in dirnames if d not in ("dbt_packages", "target")
                                     and (Path(dirpath) / d).resolve() not in nested)
                for f in sorted(filenames):
                    p = Path(dirpath) / f
                    rel = p.relative_to(root).as_posix()
                    if f.endswith(".sql"):
                        text = _read(p)
                        if disabled(text, set_vars):
                            dp.other_names.add(p.stem)   # (a name a ref typo must not hit)
                            continue
                        dp.models[p.stem] = Model(p.stem, rel, text, REF.findall(text), sub)
                    elif f.endswith((".yml", ".yaml")):
                        dp.ymls.append(rel)
        for key, default in (("seed-paths", ["seeds"]), ("snapshot-paths", ["snapshots"])):
            for d in _paths(cfg, key, default):
                for p in (base / d).rglob("*"):
                    dp.other_names.add(p.stem)
        for yml in dp.ymls:
            dp.contracts.extend(find_contracts(root, yml))
        out.append(dp)
    return out


# a model disabled by its own config(): `enabled=false`, or `enabled=var('x', false)` with x
# not set in dbt_project.yml. dbt neither compiles it nor resolves its refs and vars (checked
# with dbt 1.11: `dbt parse` and `dbt compile` pass with an undeclared var() in a disabled
# model; an enabled model that refs a disabled one fails), so an edit there is no fault, and a
# new model that refs it is no benign edit: such models are never sites.
ENABLED = re.compile(r"""\benabled\s*=\s*\(?\s*(?:(false)\b|var\(\s*['"](\w+)['"]\s*,\s*false\s*\))""",
                     re.I)


def _set_vars(value: object) -> set[str]:
    """Names of the vars dbt_project.yml sets to a true value (any package scope)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict):
                out |= _set_vars(v)
            elif v not in (False, None, "false", "False", 0):
                out.add(str(k))
    return out


def disabled(text: str, set_vars: set[str]) -> bool:
    m = ENABLED.search(text)
    return bool(m) and (bool(m.group(1)) or m.group(2) not in set_vars)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


NAME_LINE = re.compile(r"""^(\s*)-\s+name:\s*['"]?([A-Za-z0-9_]+)['"]?\s*$""")


def _block_end(lines: list[str], start: int) -> int:
    ind = _indent(lines[start])
    i = start + 1
    while i < len(lines):
        s = lines[i]
        if s.strip() and not s.lstrip().startswith("#") and _indent(s) <= ind:
            break
        i += 1
    return i


def find_contracts(root: Path, yml: str) -> list[Contract]:
    lines = _read(root / yml).splitlines()
    if not any(re.match(r"^models\s*:", line) for line in lines):
        return []
    out: list[Contract] = []
    in_models = False
    for i, line in enumerate(lines):
        if re.match(r"^\S", line):
            in_models = bool(re.match(r"^models\s*:", line))
            continue
        m = NAME_LINE.match(line)
        if not (in_models and m and _indent(line) <= 4):
            continue
        end = _block_end(lines, i)
        block = lines[i:end]
        enforced = None
        for j, b in enumerate(block):
            if re.match(r"^\s*enforced:\s*true\s*$", b, re.I):
                prev = "\n".join(block[max(0, j - 3):j])
                if "contract" in prev:
                    enforced = i + j
        if enforced is None:
            continue
        cols: list[tuple[str, int, int, int | None]] = []
        col_ind = None
        for j in range(i + 1, end):
            if re.match(r"^\s*columns\s*:\s*$", lines[j]) and _indent(lines[j]) == _indent(line) + 2:
                col_ind = _indent(lines[j])
                k = j + 1
                while k < end:
                    cm = NAME_LINE.match(lines[k])
                    if cm and _indent(lines[k]) >= col_ind and len(cm.group(1)) <= col_ind + 2:
                        cend = min(_block_end(lines, k), end)
                        dt = next((x for x in range(k, cend)
                                   if re.match(r"^\s*data_type\s*:\s*\S", lines[x])), None)
                        cols.append((cm.group(2), k, cend, dt))
                        k = cend
                        continue
                    if lines[k].strip() and _indent(lines[k]) <= col_ind and not lines[k].lstrip().startswith("-"):
                        break
                    k += 1
                break
        if cols:
            out.append(Contract(m.group(2), yml, i, end, cols, enforced))
    return out


# ----------------------------------------------------------------------------- sites
@dataclass
class Site:
    cls: str
    project: str
    where: str
    apply: Callable[[Path], None]
    setup: Callable[[Path], None] | None = None  # an extra base commit (critical tags)
    control: Callable[[Path], None] | None = None  # a benign edit on that base that must pass


def _edit(rel: str, fn: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        p.write_text(fn(p.read_text(encoding="utf-8")), encoding="utf-8")
    return apply


def _delete(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).unlink()
    return apply


def _write(rel: str, text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).write_text(text, encoding="utf-8")
    return apply


def _lines_edit(rel: str, fn: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        text = p.read_text(encoding="utf-8")
        out = "\n".join(fn(text.split("\n")))
        p.write_text(out, encoding="utf-8")
    return apply


def _outside_jinja(text: str) -> list[tuple[int, int]]:
    """Spans of text outside {{ }}, {% %}, {# #} and -- comments."""
    spans = []
    pos = 0
    for m in re.finditer(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|--[^\n]*|/\*.*?\*/", text, re.S):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    return spans


def _typo(name: str) -> str:
    i = max(1, len(name) // 2)
    if name[i] == "_":
        i += 1
    return name[:i] + name[i + 1:]


def _all_names(dps: list[DbtProject]) -> set[str]:
    names: set[str] = set()
    for dp in dps:
        names |= set(dp.models) | dp.other_names
    return names


def sites_for(project: corpus.Project, root: Path, dps: list[DbtProject]) -> dict[str, list[Site]]:
    import yaml

    names = _all_names(dps)
    out: dict[str, list[Site]] = {c: [] for c in FAULTS + BENIGN}
    pn = project.name
    contracted = {c.model for dp in dps for c in dp.contracts}
    for dp in dps:
        models = list(dp.models.values())
        with_refs = [m for m in models if any(r in dp.models and r != m.name for r in m.refs)]
        referenced = sorted({r for m in models for r in m.refs if r in dp.models and r != m.name})
        for m in with_refs:
            target = next(r for r in m.refs if r in dp.models and r != m.name)
            typo = _typo(target)
            if typo not in names:
                out["ref_typo"].append(Site("ref_typo", pn, f"{m.path}: ref('{target}') -> ref('{typo}')",
                                            _edit(m.path, lambda t, a=target, b=typo: re.sub(
                                                r"""(ref\(\s*['"])""" + re.escape(a) + r"""(['"])""",
                                                lambda mm: mm.group(1) + b + mm.group(2), t, count=1))))
            out["jinja_syntax"].append(Site(
                "jinja_syntax", pn, f"{m.path}: `{{{{ ref('{target}') }}}}` loses its closing `}}`",
                _edit(m.path, lambda t: REF.sub(lambda mm: mm.group(0)[:-1], t, count=1))))
            out["undeclared_var"].append(Site(
                "undeclared_var", pn, f"{m.path}: new `{{{{ var('corpus_undeclared_var') }}}}`",
                _edit(m.path, lambda t: t.rstrip("\n") + "\n-- {{ var('corpus_undeclared_var') }}\n")))
            up = dp.models[target]
            out["ref_cycle"].append(Site(
                "ref_cycle", pn, f"{up.path}: depends_on ref('{m.name}') (which refs it)",
                _edit(up.path, lambda t, n=m.name: f"-- depends_on: {{{{ ref('{n}') }}}}\n" + t)))
        for r in referenced:
            users = dp.downstream(r)
            out["deleted_model_referenced"].append(Site(
                "deleted_model_referenced", pn,
                f"{dp.models[r].path} deleted; used by {users[0].path}" + (
                    f" (+{len(users) - 1})" if len(users) > 1 else ""),
                _delete(dp.models[r].path)))
        for m in models:
            if "{%" in m.text and "macro" in m.text:
                continue
            lines = m.text.split("\n")
            # misspelled keyword: the first `select` outside Jinja/comments
            for a, b in _outside_jinja(m.text):
                km = re.search(r"\bselect\b", m.text[a:b], re.I)
                if km:
                    pos = a + km.start()
                    word = m.text[pos:pos + 6]
                    bad = word[:3] + word[4:]
                    out["sql_misspelled_keyword"].append(Site(
                        "sql_misspelled_keyword", pn, f"{m.path}: `{word}` -> `{bad}`",
                        _edit(m.path, lambda t, p=pos, w=bad: t[:p] + w + t[p + 6:])))
                    break
            # missing comma after `expr as alias,` followed by another item
            for i, line in enumerate(lines[:-1]):
                if re.search(r"[{}'\"#]|--|/\*", line):
                    continue
                if not re.match(r"^\s*\S.*\s+as\s+[A-Za-z_][A-Za-z0-9_]*\s*,\s*$", line, re.I):
                    continue
                nxt = lines[i + 1].strip()
                w = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)", nxt)
                if not w or w.group(1).lower() in SQL_WORDS or re.search(r"[{'\"]|--", nxt):
                    continue
                out["sql_missing_comma"].append(Site(
                    "sql_missing_comma", pn, f"{m.path}:{i + 1}: trailing comma removed",
                    _lines_edit(m.path, lambda ls, k=i: ls[:k] + [ls[k].rstrip().rstrip(",")] + ls[k + 1:])))
                break
            # unclosed parenthesis: drop the last `)` of a plain SQL line with balanced parens
            for i, line in enumerate(lines):
                if re.search(r"[{}'\"#]|--|/\*", line) or ")" not in line:
                    continue
                if line.count("(") != line.count(")") or line.count("(") == 0:
                    continue
                out["sql_unclosed_paren"].append(Site(
                    "sql_unclosed_paren", pn, f"{m.path}:{i + 1}: last `)` removed",
                    _lines_edit(m.path, lambda ls, k=i: ls[:k] + [
                        ls[k][:ls[k].rindex(")")] + ls[k][ls[k].rindex(")") + 1:]] + ls[k + 1:])))
                break
            # column removed but used downstream
            users = [u for u in dp.downstream(m.name)
                     if len(set(u.refs)) == 1 and not SOURCE.search(u.text)]
            if users and m.name not in contracted:
                sel = [i for i, ln in enumerate(lines) if re.match(r"^\s*select\b", ln, re.I)]
                if sel:
                    last = sel[-1]
                    for i in range(last + 1, len(lines)):
                        ln = lines[i]
                        if re.match(r"^\s*from\b", ln, re.I):
                            break
                        am = re.match(r"^\s*[^,\s].*\s+as\s+([A-Za-z_][A-Za-z0-9_]*)\s*,\s*$", ln, re.I)
                        if not am or re.search(r"[{}]|--", ln):
                            continue
                        col = am.group(1)
                        u = next((u for u in users
                                  if re.search(r"\b" + re.escape(col) + r"\b", u.text, re.I)
                                  and not re.search(r"\bas\s+" + re.escape(col) + r"\b", u.text, re.I)), None)
                        if u is None:
                            continue
                        out["column_removed_downstream"].append(Site(
                            "column_removed_downstream", pn,
                            f"{m.path}:{i + 1}: column `{col}` removed; used by {u.path}",
                            _lines_edit(m.path, lambda ls, k=i: ls[:k] + ls[k + 1:])))
                        break
            # benign edits
            out["benign_comment"].append(Site(
                "benign_comment", pn, f"{m.path}: a SQL comment line added",
                _edit(m.path, lambda t: "-- reviewed: no functional change\n" + t)))
            out["benign_whitespace"].append(Site(
                "benign_whitespace", pn, f"{m.path}: blank lines and indentation",
                _edit(m.path, lambda t: re.sub(r"\n(?=\S)", "\n  ", t, count=1).rstrip("\n") + "\n\n\n")))
            if (m.name not in contracted and not dp.downstream(m.name)
                    and not re.search(r"\bunion\b|contract", m.text, re.I)):
                sel = [i for i, ln in enumerate(lines) if re.match(r"^\s*select\s*$", ln, re.I)]
                if sel and sel[-1] == max(i for i, ln in enumerate(lines)
                                          if re.match(r"^\s*select\b", ln, re.I)):
                    k = sel[-1]
                    out["benign_new_column"].append(Site(
                        "benign_new_column", pn, f"{m.path}:{k + 2}: new column `corpus_new_col`",
                        _lines_edit(m.path, lambda ls, k=k: ls[:k + 1] + ["    1 as corpus_new_col,"] + ls[k + 1:])))
            if m in with_refs or m.refs:
                pass
        for r in referenced[:]:
            x = dp.models[r]
            rel = str(Path(x.path).with_name(f"corpus_new_leaf_{r}.sql"))
            out["benign_new_leaf_model"].append(Site(
                "benign_new_leaf_model", pn, f"new {rel} selecting from ref('{r}')",
                _write(rel, f"select * from {{{{ ref('{r}') }}}}\n")))
        # critical tag removed: set up a critical model at the base, then remove its tag
        for r in referenced:
            x = dp.models[r]
            if r in contracted:
                continue
            policy = (f"{dp.dir}/bulwark.yml" if dp.dir != "." else "bulwark.yml")
            tag_line = "{{ config(tags=['critical']) }}\n"

            def setup(root: Path, x: Model = x, policy: str = policy, tag_line: str = tag_line) -> None:
                (root / policy).write_text(
                    "# corpus harness: a team that tags critical models\n"
                    "critical:\n  require:\n    description: false\n    owner: false\n"
                    "    primary_key: false\n    contract: false\n"
                    "contracts:\n  select: 'tag:corpus_no_such_tag'\n", encoding="utf-8")
                p = root / x.path
                p.write_text(tag_line + p.read_text(encoding="utf-8"), encoding="utf-8")

            out["critical_tag_removed"].append(Site(
                "critical_tag_removed", pn, f"{x.path}: `tags=['critical']` removed",
                _edit(x.path, lambda t, tl=tag_line: t.replace(tl, "", 1)),
                setup=setup,
                control=_edit(x.path, lambda t: "-- reviewed: no functional change\n" + t)))
        # contracts
        for c in dp.contracts:
            typed = [col for col in c.columns if col[3] is not None]
            if typed:
                name, s, e, dt = typed[0]
                out["contract_column_renamed"].append(Site(
                    "contract_column_renamed", pn, f"{c.yml}:{s + 1}: {c.model}.{name} renamed in YAML",
                    _lines_edit(c.yml, lambda ls, k=s, n=name: ls[:k] + [
                        re.sub(r"\b" + re.escape(n) + r"\b", n + "_renamed", ls[k], count=1)] + ls[k + 1:])))

                def retype(ls: list[str], k: int = dt) -> list[str]:  # type: ignore[assignment]
                    old = ls[k].split(":", 1)[1].strip().strip("'\"").lower()
                    new = "boolean" if not old.startswith("bool") else "date"
                    return ls[:k] + [ls[k].split(":", 1)[0] + ": " + new] + ls[k + 1:]
                out["contract_column_retyped"].append(Site(
                    "contract_column_retyped", pn, f"{c.yml}:{dt + 1}: {c.model}.{name} data_type changed",
                    _lines_edit(c.yml, retype)))
                out["contract_column_removed"].append(Site(
                    "contract_column_removed", pn, f"{c.yml}:{s + 1}: {c.model}.{name} removed from YAML",
                    _lines_edit(c.yml, lambda ls, a=s, b=e: ls[:a] + ls[b:])))
            if c.enforced_line is not None:
                out["contract_disabled"].append(Site(
                    "contract_disabled", pn, f"{c.yml}:{c.enforced_line + 1}: {c.model} enforced: false",
                    _lines_edit(c.yml, lambda ls, k=c.enforced_line: ls[:k] + [
                        re.sub(r"true", "false", ls[k], flags=re.I)] + ls[k + 1:])))
        # YAML: bad indentation, description edits
        for yml in dp.ymls:
            lines = _read(root / yml).split("\n")
            for i in range(len(lines) - 1):
                a, b = lines[i], lines[i + 1]
                am = re.match(r"^(\s+)(?:- )?[A-Za-z_]+:\s+[A-Za-z0-9]", a)
                if not am or "#" in a or _indent(b) != _indent(a) + (2 if a.lstrip().startswith("- ") else 0):
                    continue
                if not re.match(r"^\s*[A-Za-z_]+:", b):
                    continue
                bad = lines[:i + 1] + [" " + b] + lines[i + 2:]
                try:
                    yaml.safe_load("\n".join(bad))
                except yaml.YAMLError:
                    out["yaml_bad_indent"].append(Site(
                        "yaml_bad_indent", pn, f"{yml}:{i + 2}: indented by one more space",
                        _lines_edit(yml, lambda ls, k=i + 1: ls[:k] + [" " + ls[k]] + ls[k + 1:])))
                    break
            for i, line in enumerate(lines):
                dm = re.match(r"""^(\s+description:\s*)(["']?)([^"'{}#|>&*]+)\2\s*$""", line)
                if not dm or not dm.group(3).strip():
                    continue
                new = dm.group(1) + dm.group(2) + dm.group(3).rstrip() + " (reviewed)" + dm.group(2)
                try:
                    yaml.safe_load("\n".join(lines[:i] + [new] + lines[i + 1:]))
                except yaml.YAMLError:
                    continue
                out["benign_description"].append(Site(
                    "benign_description", pn, f"{yml}:{i + 1}: description edited",
                    _lines_edit(yml, lambda ls, k=i, n=new: ls[:k] + [n] + ls[k + 1:])))
                break
    return out


# ----------------------------------------------------------------------------- running
@dataclass
class Outcome:
    cls: str
    project: str
    where: str
    rc: int
    codes: list[str]
    seconds: float
    status: str  # caught | missed | crashed | flagged | passed | control-failed | error
    detail: str = ""


def git(root: Path, *args: str, check: bool = True) -> str:
    return corpus_run.git(*args, cwd=root, check=check)


def run_precommit(root: Path, env: dict[str, str], precommit: str, timeout: int,
                  all_files: bool = False) -> tuple[int, str, float]:
    start = time.perf_counter()
    extra = ["--all-files"] if all_files else []
    try:
        proc = subprocess.run([precommit, "run", "--color", "never", "--hook-stage", "pre-commit",
                               *extra],
                              cwd=root, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "TIMEOUT", time.perf_counter() - start
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def error_ids(output: str) -> set[tuple[str, str, str]]:
    """(path, code, message) of every error finding: the identity without line and column."""
    out = set()
    for line in output.splitlines():
        m = corpus_run.FINDING.match(line.strip())
        if m and (m.group("sev") or "error") == "error":
            out.add((m.group("path"), m.group("code"), m.group("msg").strip()))
    return out


def judge(site: Site, rc: int, output: str, took: float,
          existing: frozenset[tuple[str, str, str]] = frozenset()) -> Outcome:
    """A fault is caught when the commit is blocked by an error the clean base does not have
    (the base's own false positives do not count as catching the fault)."""
    new = error_ids(output) - existing
    codes = sorted({code for _p, code, _m in new})
    crashed = rc == -1 or "Traceback (most recent call last)" in output or re.search(
        r"exit code: (?!1\b)\d+", output) is not None
    lines = [ln.strip() for ln in output.splitlines()
             if corpus_run.FINDING.match(ln.strip()) and "[info]" not in ln]
    detail = " | ".join(lines[:2])[:300]
    if site.cls in BENIGN:
        status = "passed" if rc == 0 else ("crashed" if crashed else "flagged")
    elif crashed:
        status = "crashed"
        detail = output.strip()[-300:]
    else:
        status = "caught" if rc != 0 and codes else "missed"
        if status == "missed" and rc != 0:
            detail = "blocked only by findings the clean base already has: " + detail
    return Outcome(site.cls, site.project, site.where, rc, codes, took, status, detail)


def reset(root: Path, base: str) -> None:
    git(root, "reset", "-q", "--hard", base)
    git(root, "clean", "-q", "-fd")  # keeps ignored files: the parse cache survives


def run_site(root: Path, base: str, site: Site, env: dict[str, str], args: argparse.Namespace,
             existing: frozenset[tuple[str, str, str]] = frozenset()) -> Outcome:
    reset(root, base)
    if site.setup is not None:
        site.setup(root)
        git(root, "add", "-A")
        git(root, "commit", "-q", "--no-verify", "-m", "corpus: critical model")
        if site.control is not None:
            site.control(root)
            git(root, "add", "-A")
            rc, output, took = run_precommit(root, env, args.pre_commit, args.timeout)
            git(root, "reset", "-q", "--hard", "HEAD")
            if rc != 0:
                o = judge(site, rc, output, took, existing)
                o.status, o.detail = "control-failed", (o.detail or output.strip()[-300:])
                reset(root, base)
                return o
    site.apply(root)
    git(root, "add", "-A")
    rc, output, took = run_precommit(root, env, args.pre_commit, args.timeout)
    outcome = judge(site, rc, output, took, existing)
    reset(root, base)
    return outcome


@dataclass
class Prepared:
    project: corpus.Project
    root: Path
    base: str
    queue: list[Site]
    available: dict[str, int]
    existing: frozenset[tuple[str, str, str]] = frozenset()  # errors of the clean base


def prepare(project: corpus.Project, args: argparse.Namespace, rev: str) -> Prepared:
    """The base repository of a project and its chosen sites, in a per-project random order."""
    src = Path(args.corpus) / project.name
    root = Path(tempfile.mkdtemp(prefix=f"fi-{project.name}-", dir=args.workdir))
    corpus_run.copy_project(project, src, root)
    corpus_run.init_repo(root, corpus_run.precommit_config(
        Path(args.hooks_repo).resolve(), rev, project.hook_args))
    base = git(root, "rev-parse", "HEAD")
    sites = sites_for(project, root, scan(root, project))
    available = {c: len(v) for c, v in sites.items()}
    rng = random.Random(f"{args.seed}:{project.name}")
    classes = [c for c in FAULTS + BENIGN if not args.classes or c in args.classes]
    queue: list[Site] = []
    picked = {}
    for c in classes:
        pool = list(sites[c])
        rng.shuffle(pool)
        picked[c] = pool[:args.per_class]
    for k in range(args.per_class):
        order = list(classes)
        rng.shuffle(order)  # a time limit then cuts different classes in different projects
        queue.extend(picked[c][k] for c in order if k < len(picked[c]))
    return Prepared(project, root, base, queue, available)


def run_one(prep: Prepared, site: Site, env: dict[str, str], args: argparse.Namespace) -> Outcome:
    try:
        o = run_site(prep.root, prep.base, site, env, args, prep.existing)
    except Exception as exc:  # noqa: BLE001 - a harness problem must not stop the run
        o = Outcome(site.cls, site.project, site.where, -2, [], 0.0, "error", repr(exc)[:200])
        with contextlib.suppress(RuntimeError):
            reset(prep.root, prep.base)
    print(f"# {o.project:22} {o.cls:26} {o.status:8} {o.seconds:5.1f}s {','.join(o.codes):16} "
          f"{o.where[:110]}", file=sys.stderr, flush=True)
    if o.status in ("missed", "flagged", "crashed", "control-failed", "error") and o.detail:
        print(f"#     {o.detail[:250]}", file=sys.stderr, flush=True)
    return o


def summary(outcomes: list[Outcome], available: dict[str, dict[str, int]], rev: str,
            projects: list[str], hooks_repo: Path | None = None) -> str:
    label = corpus_run.hooks_label(hooks_repo, rev) if hooks_repo else f"`{rev[:12]}`"
    lines = [f"Measured with the hooks of dbt-bulwark {label} through `pre-commit run` "
             f"(`bench/fault_injection.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), "
             f"fresh clones (no dbt_packages/), projects: {', '.join(projects)}.", "",
             "| class | caught / sites | % | crashed | projects with sites | no site in |",
             "|---|---:|---:|---:|---|---|"]
    for c in FAULTS:
        rows = [o for o in outcomes if o.cls == c and o.status != "control-failed"]
        caught = sum(o.status == "caught" for o in rows)
        crashed = sum(o.status == "crashed" for o in rows)
        pct = f"{100 * caught / len(rows):.0f}%" if rows else "-"
        with_sites = sorted({o.project for o in rows})
        none = sorted(p for p in projects if available.get(p, {}).get(c, 0) == 0)
        ctl = sum(o.status == "control-failed" for o in outcomes if o.cls == c)
        extra = f" ({ctl} control failed)" if ctl else ""
        lines.append(f"| {c} | {caught} / {len(rows)}{extra} | {pct} | {crashed} | "
                     f"{len(with_sites)} | {', '.join(none) or '-'} |")
    lines += ["", "| benign edit | flagged / edits | no site in |", "|---|---:|---|"]
    for c in BENIGN:
        rows = [o for o in outcomes if o.cls == c]
        flagged = sum(o.status != "passed" for o in rows)
        none = sorted(p for p in projects if available.get(p, {}).get(c, 0) == 0)
        lines.append(f"| {c} | {flagged} / {len(rows)} | {', '.join(none) or '-'} |")
    misses = [o for o in outcomes if o.status in ("missed", "crashed", "flagged", "control-failed", "error")]
    if misses:
        lines += ["", "<details><summary>missed, crashed and flagged edits</summary>", "",
                  "| class | project | edit | status | output |", "|---|---|---|---|---|"]
        for o in misses:
            detail = o.detail.replace("|", "\\|").replace("\n", " ")[:160]
            lines.append(f"| {o.cls} | {o.project} | {o.where.replace('|', '/')[:120]} | {o.status} | {detail} |")
        lines += ["", "</details>"]
    return "\n".join(lines)


def write_block(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


# one or two per adapter, the contracted one (dbt-project-evaluator) and a large monorepo; the
# full corpus takes hours on 2 cores (every site is a `pre-commit run` of four hooks)
DEFAULT_PROJECTS = ("jaffle-shop,jaffle_shop_duckdb,nba-monte-carlo,hooli,balboa,"
                    "dbt-project-evaluator,hubspot,redshift,databricks-c360,mattermost")


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hooks-repo", default=str(here.parent),
                    help="the dbt-bulwark repository whose HEAD provides the hooks")
    ap.add_argument("--corpus", default="/work/corpus", help="where `corpus.py checkout` cloned")
    ap.add_argument("--only", default=DEFAULT_PROJECTS,
                    help="comma-separated projects (default: the small and medium ones)")
    ap.add_argument("--classes", type=lambda s: set(s.split(",")), default=None,
                    help="comma-separated classes (default: all)")
    ap.add_argument("--per-class", type=int, default=2, help="sites per class and project")
    ap.add_argument("--seed", default="10")
    ap.add_argument("--budget", type=float, default=2400, help="seconds for the whole run")
    ap.add_argument("--pre-commit", default=str(Path(sys.executable).with_name("pre-commit")))
    ap.add_argument("--pre-commit-home", default=os.path.join(tempfile.gettempdir(),
                                                              "bulwark-bench-pre-commit"))
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--readme", action="append", default=[],
                    help="write the summary into this Markdown file (repeatable)")
    ap.add_argument("--json", help="write every outcome here")
    ap.add_argument("--summarize", metavar="JSON",
                    help="only rebuild the tables from the --json file of an earlier (or "
                         "interrupted) run and its JSON.sites companion")
    ap.add_argument("--list-sites", action="store_true",
                    help="only print how many sites each class has per project (no runs)")
    args = ap.parse_args(argv)
    if args.summarize:
        meta = json.loads(Path(args.summarize + ".sites").read_text())
        done = [Outcome(**o) for o in json.loads(Path(args.summarize).read_text())]
        body = summary(done, meta["available"], meta["rev"], meta["projects"],
                       Path(args.hooks_repo))
        body += (f"\n\n{len(done)} of {meta['chosen']} chosen sites were run "
                 f"(time budget {meta['budget']:.0f} s, projects served round-robin).")
        print(body)
        for path in args.readme:
            write_block(Path(path), body)
        return 0
    if args.list_sites:
        for project in corpus.by_name(args.only):
            src = Path(args.corpus) / project.name
            if not src.exists():
                continue
            sites = sites_for(project, src, scan(src, project))
            print(project.name, {c: len(v) for c, v in sites.items()})
            for c, v in sites.items():
                for s in v[:args.per_class]:
                    print(f"    {c}: {s.where}")
        return 0
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    rev = corpus_run.hooks_rev(Path(args.hooks_repo))
    projects = [p for p in corpus.by_name(args.only) if (Path(args.corpus) / p.name).exists()]
    env = corpus_run.precommit_env(Path(args.pre_commit_home))
    preps = [prepare(p, args, rev) for p in projects]
    if preps:  # the hook environment is installed once, untimed
        subprocess.run([args.pre_commit, "install-hooks"], cwd=preps[0].root, env=env,
                       capture_output=True, timeout=args.timeout)
    if args.json:
        Path(args.json + ".sites").write_text(json.dumps({
            "rev": rev, "projects": [p.name for p in projects], "budget": args.budget,
            "available": {p.project.name: p.available for p in preps},
            "chosen": sum(len(p.queue) for p in preps)}, indent=1))
    for prep in preps:  # the clean base's own errors (untimed; also fills the parse cache)
        rc, output, _took = run_precommit(prep.root, env, args.pre_commit, args.timeout,
                                          all_files=True)
        prep.existing = frozenset(error_ids(output))
        print(f"# {prep.project.name}: clean base rc={rc}, {len(prep.existing)} distinct errors",
              file=sys.stderr, flush=True)
    start = time.time()
    outcomes: list[Outcome] = []
    available = {p.project.name: p.available for p in preps}
    # round-robin over projects: a time limit leaves every project with as many sites done
    pending = [list(p.queue) for p in preps]
    not_run = 0
    try:
        while any(pending):
            for prep, queue in zip(preps, pending, strict=True):
                if not queue:
                    continue
                if time.time() - start > args.budget:
                    not_run = sum(len(q) for q in pending)
                    print(f"# time budget reached: {not_run} sites not run", file=sys.stderr)
                    pending = [[] for _ in pending]
                    break
                outcomes.append(run_one(prep, queue.pop(0), env, args))
                if args.json:  # written as it goes: an interrupted run keeps what it measured
                    Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    finally:
        if not args.keep:
            for prep in preps:
                shutil.rmtree(prep.root, ignore_errors=True)
    body = summary(outcomes, available, rev, [p.name for p in projects], Path(args.hooks_repo))
    if not_run:
        body += (f"\n\n{not_run} chosen sites were not run (time budget {args.budget:.0f} s; "
                 "projects are served round-robin, so every project lost about as many).")
    print(body)
    for path in args.readme:
        write_block(Path(path), body)
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
