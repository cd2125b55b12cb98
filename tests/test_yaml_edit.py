"""Tests for dbt_bulwark.yaml_edit: every fix must only *insert* what it means to."""

from __future__ import annotations

import copy
import difflib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_bulwark.yaml_edit import NEW_FILE_TEXT, PropertiesEditor, YamlEditError

# --------------------------------------------------------------------------- helpers


def _is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


def assert_only_insertions(before: str, after: str,
                           expected_inserted_substrings: Sequence[str] = ()) -> str:
    """``after`` must be ``before`` plus inserted lines; a changed line is only
    allowed when it grows (a flow collection / scalar line gaining items: every
    character of the old line is kept, in order). Returns the inserted text."""
    a = before.splitlines(keepends=True)
    b = after.splitlines(keepends=True)
    inserted: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op == "insert":
            inserted += b[j1:j2]
            continue
        if op == "replace" and i2 - i1 <= j2 - j1:
            # each old line must survive, grown, in order among the new ones
            new = iter(range(j1, j2))
            for old in a[i1:i2]:
                for j in new:
                    if _is_subsequence(old, b[j]):
                        break
                else:
                    raise AssertionError(f"line changed destructively: {old!r}\n"
                                         + "".join(difflib.unified_diff(a, b)))
            inserted += b[j1:j2]
            continue
        raise AssertionError(f"{op} of {a[i1:i2]!r} -> {b[j1:j2]!r}\n"
                             + "".join(difflib.unified_diff(a, b)))
    text = "".join(inserted)
    for want in expected_inserted_substrings:
        assert want in text, f"{want!r} not among inserted text:\n{text}"
    return text


def write(tmp_path: Path, text: str, name: str = "schema.yml", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def edit(tmp_path: Path, text: str, fn: Callable[[PropertiesEditor], object], *,
         bom: bool = False) -> str:
    """Write ``text``, run ``fn(editor)``, save; return the new file text."""
    path = write(tmp_path, text, bom=bom)
    ed = PropertiesEditor(path)
    fn(ed)
    ed.save()
    out = path.read_bytes()
    if bom:
        assert out.startswith(b"\xef\xbb\xbf")
        out = out[3:]
    return out.decode("utf-8")


BASIC = """\
# Properties for the marts layer.
version: 2

models:
  # the orders model
  - name: orders  # inline comment
    description: "All orders, one row per order."
    columns:
      - name: order_id
        description: 'Primary key'
        data_tests: [unique, not_null]
      - name: amount

  # customers, below
  - name: customers
    description: >
      A long folded description that goes on and on and on past any sensible
      line width, so that a re-wrapping emitter would certainly touch it here.

  - name: payments
    description: |
      Literal text
        with indentation kept
"""

# --------------------------------------------------------------------------- add_tags


def test_add_tags_creates_config_tags(tmp_path: Path) -> None:
    out = edit(tmp_path, BASIC, lambda ed: ed.add_tags(ed.model("orders"), ["critical", "pii"]))
    ins = assert_only_insertions(BASIC, out, ["    config:\n", "      tags:\n",
                                              "        - critical\n", "        - pii\n"])
    # inserted right after the entry's last content, before the comment for the next model
    assert out.index("config:") < out.index("# customers, below")
    assert ins.count("\n") == 4
    assert yaml.safe_load(out)["models"][0]["config"] == {"tags": ["critical", "pii"]}


def test_add_tags_after_folded_and_literal(tmp_path: Path) -> None:
    def fn(ed: PropertiesEditor) -> None:
        ed.add_tags(ed.model("customers"), ["a"])
        ed.add_tags(ed.model("payments"), ["b"])

    out = edit(tmp_path, BASIC, fn)
    assert_only_insertions(BASIC, out, ["    config:\n      tags:\n        - a\n",
                                        "        - b\n"])
    data = yaml.safe_load(out)
    before = yaml.safe_load(BASIC)
    assert data["models"][1]["description"] == before["models"][1]["description"]
    assert data["models"][2]["description"] == before["models"][2]["description"]
    # the blank line separating customers from payments stays after the new lines
    assert "        - a\n\n  - name: payments" in out


@pytest.mark.parametrize("tags_src, expected_line", [
    ("    tags: [daily, 'hourly']\n", "    tags: [daily, 'hourly', 'new']\n"),
    ('    tags: ["daily"]\n', '    tags: ["daily", "new"]\n'),
    ("    tags: []\n", "    tags: [new, daily]\n"),
    ("    tags: daily\n", "    tags: [daily, new]\n"),
    ("    tags: 'daily'\n", "    tags: ['daily', 'new']\n"),
])
def test_add_tags_extends_config_tags_in_its_style(tmp_path: Path, tags_src: str, expected_line: str) -> None:
    src = "models:\n  - name: m\n    config:\n  " + tags_src + "    description: x\n"
    out = edit(tmp_path, src, lambda ed: ed.add_tags(ed.model("m"), ["new", "daily"]))
    assert_only_insertions(src, out, ["  " + expected_line])
    assert "  " + expected_line in out


def test_add_tags_never_writes_top_level_tags(tmp_path: Path) -> None:
    # dbt 1.11 ignores a model's top-level `tags:`: it is left alone and not counted
    src = "models:\n  - name: m\n    tags: [daily]\n    description: x\n"
    out = edit(tmp_path, src, lambda ed: ed.add_tags(ed.model("m"), ["daily", "new"]))
    assert_only_insertions(src, out, ["    config:\n      tags: [daily, new]\n"])
    assert yaml.safe_load(out)["models"][0] == {"name": "m", "tags": ["daily"],
                                                "description": "x",
                                                "config": {"tags": ["daily", "new"]}}


def test_add_tags_extends_block_list_under_config(tmp_path: Path) -> None:
    src = ("models:\n- name: m\n  config:\n    materialized: view\n    tags:\n    - a  # keep\n"
           "    - b\n  columns: []\n")
    out = edit(tmp_path, src, lambda ed: ed.add_tags(ed.model("m"), ["b", "c", "c"]))
    assert_only_insertions(src, out, ["    - c\n"])
    assert out == src.replace("    - b\n", "    - b\n    - c\n")


def test_add_tags_prefers_config_tags_over_top_level(tmp_path: Path) -> None:
    src = "models:\n  - name: m\n    tags: [x]\n    config:\n      tags: [y]\n"
    out = edit(tmp_path, src, lambda ed: ed.add_tags(ed.model("m"), ["x", "y", "z"]))
    assert_only_insertions(src, out, ["      tags: [y, x, z]\n"])


def test_add_tags_into_existing_config_without_tags(tmp_path: Path) -> None:
    src = "models:\n  - name: m\n    config:\n      materialized: table  # why\n    columns:\n      - name: id\n"
    out = edit(tmp_path, src, lambda ed: ed.add_tags(ed.model("m"), ["t"]))
    assert_only_insertions(src, out, ["      tags:\n        - t\n"])
    assert yaml.safe_load(out)["models"][0]["config"] == {"materialized": "table", "tags": ["t"]}


def test_add_tags_noop_returns_false_and_save_writes_nothing(tmp_path: Path) -> None:
    src = "models:\n  - name: m\n    config: {tags: [a, b]}\n    tags: c\n"
    path = write(tmp_path, src)
    before = os.stat(path)
    ed = PropertiesEditor(path)
    entry = ed.model("m", create=False)
    assert entry is not None
    assert ed.add_tags(entry, ["a", "b"]) is False
    assert ed.save() is False
    assert read(path) == src
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_add_tags_to_null_config_and_null_tags(tmp_path: Path) -> None:
    src = "models:\n  - name: m\n    config:\n  - name: n\n    config:\n      tags:\n"

    def fn(ed: PropertiesEditor) -> None:
        ed.add_tags(ed.model("m"), ["a"])
        ed.add_tags(ed.model("n"), ["b"])

    out = edit(tmp_path, src, fn)
    assert_only_insertions(src, out, ["      tags:\n        - a\n", "        - b\n"])
    data = yaml.safe_load(out)
    assert data["models"][0]["config"] == {"tags": ["a"]}
    assert data["models"][1]["config"] == {"tags": ["b"]}


# --------------------------------------------------------------------------- set_config


def test_set_config_creates_config(tmp_path: Path) -> None:
    out = edit(tmp_path, BASIC,
               lambda ed: ed.set_config(ed.model("orders"), "contract", {"enforced": True}))
    assert_only_insertions(BASIC, out, ["    config:\n      contract:\n        enforced: true\n"])


def test_set_config_merges_into_existing_contract(tmp_path: Path) -> None:
    src = ("models:\n  - name: m\n    config:\n      materialized: table\n"
           "      contract:\n        alias_types: false  # keep me\n    columns: []\n")
    out = edit(tmp_path, src,
               lambda ed: ed.set_config(ed.model("m"), "contract", {"enforced": True}))
    assert_only_insertions(src, out, ["        enforced: true\n"])
    assert yaml.safe_load(out)["models"][0]["config"] == {
        "materialized": "table", "contract": {"alias_types": False, "enforced": True}}


def test_set_config_replaces_a_scalar_value(tmp_path: Path) -> None:
    src = "models:\n  - name: m\n    config:\n      contract: {enforced: false}  # c\n"
    out = edit(tmp_path, src,
               lambda ed: ed.set_config(ed.model("m"), "contract", {"enforced": True}))
    assert out == src.replace("false", "true")


def test_set_config_already_set_is_noop(tmp_path: Path) -> None:
    src = "models:\n  - name: m\n    config:\n      contract:\n        enforced: true\n"
    path = write(tmp_path, src)
    ed = PropertiesEditor(path)
    assert ed.set_config(ed.model("m"), "contract", {"enforced": True}) is False
    assert ed.save() is False


def test_set_config_scalar_and_flow_config(tmp_path: Path) -> None:
    src = "models:\n  - name: m\n    config: {materialized: table}\n"
    out = edit(tmp_path, src, lambda ed: ed.set_config(ed.model("m"), "enabled", False))
    assert_only_insertions(src, out)
    assert out == "models:\n  - name: m\n    config: {materialized: table, enabled: false}\n"


# --------------------------------------------------------------------------- add_columns


def test_add_columns_appends_and_fills_data_type(tmp_path: Path) -> None:
    cols = [{"name": "ORDER_ID", "data_type": "integer"},
            {"name": "amount", "data_type": "numeric(10, 2)"},
            {"name": "status", "data_type": "varchar", "description": "yes"}]
    out = edit(tmp_path, BASIC, lambda ed: ed.add_columns(ed.model("orders"), cols))
    assert_only_insertions(BASIC, out, [
        "        data_type: integer\n", "        data_type: numeric(10, 2)\n",
        "      - name: status\n        data_type: varchar\n        description: 'yes'\n"])
    cols_out = yaml.safe_load(out)["models"][0]["columns"]
    assert [c["name"] for c in cols_out] == ["order_id", "amount", "status"]
    assert list(cols_out[0]) == ["name", "description", "data_tests", "data_type"]
    assert cols_out[2]["description"] == "yes"


def test_add_columns_creates_columns_key_and_keeps_existing_type(tmp_path: Path) -> None:
    src = ("models:\n  - name: a\n    columns:\n      - name: id\n        data_type: bigint\n"
           "  - name: b\n    description: x\n")

    def fn(ed: PropertiesEditor) -> None:
        assert ed.add_columns(ed.model("a"), [{"name": "Id", "data_type": "int"}]) is False
        ed.add_columns(ed.model("b"), [{"name": "id", "data_type": "int"}])

    out = edit(tmp_path, src, fn)
    assert_only_insertions(src, out, ["    columns:\n      - name: id\n        data_type: int\n"])
    assert yaml.safe_load(out)["models"][0]["columns"][0]["data_type"] == "bigint"


def test_add_columns_fills_null_data_type_and_flow_columns(tmp_path: Path) -> None:
    src = ("models:\n  - name: a\n    columns:\n      - name: id\n        data_type:\n"
           "      - {name: x}\n  - name: b\n    columns: [{name: y}]\n")

    def fn(ed: PropertiesEditor) -> None:
        ed.add_columns(ed.model("a"), [{"name": "id", "data_type": "int"},
                                       {"name": "x", "data_type": "text"},
                                       {"name": "z", "data_type": "date"}])
        ed.add_columns(ed.model("b"), [{"name": "Y", "data_type": "int"},
                                       {"name": "w", "data_type": "int"}])

    out = edit(tmp_path, src, fn)
    assert_only_insertions(src, out)
    assert out == ("models:\n  - name: a\n    columns:\n      - name: id\n        data_type: int\n"
                   "      - {name: x, data_type: text}\n      - {name: z, data_type: date}\n"
                   "  - name: b\n    columns: [{name: y, data_type: int}, {name: w, data_type: int}]\n")


# --------------------------------------------------------------------------- file shapes


def test_crlf_bom_and_missing_final_newline(tmp_path: Path) -> None:
    src = ("# hdr\r\nversion: 2\r\nmodels:\r\n  - name: m\r\n"
                "    description: 'x'  # c\r\n    tags: [a]")

    def fn(ed: PropertiesEditor) -> None:
        m = ed.model("m")
        ed.add_tags(m, ["b"])
        ed.set_config(m, "contract", {"enforced": True})
        ed.model("n")

    out = edit(tmp_path, src, fn, bom=True)
    assert_only_insertions(src, out, ["    config:\r\n      tags: [b]\r\n      contract:\r\n"
                                      "        enforced: true", "  - name: n"])
    assert not out.endswith("\n")
    assert "\n" not in out.replace("\r\n", "")
    assert out.endswith("    tags: [a]\r\n    config:\r\n      tags: [b]\r\n      contract:\r\n"
                        "        enforced: true\r\n  - name: n")


@pytest.mark.parametrize("src, expected", [
    # 2-space mapping indent, dashes not indented
    ("models:\n- name: a\n  columns:\n  - name: id\n",
     "  config:\n    tags:\n    - t\n"),
    # 4-space mapping indent, dashes indented by 2 inside 4
    ("models:\n  - name: a\n    columns:\n      - name: id\n        meta:\n            k: v\n",
     "    config:\n        tags:\n          - t\n"),
    # dashes followed by 3 spaces
    ("models:\n  -   name: a\n      columns:\n        -   name: id\n",
     "      config:\n        tags:\n          -   t\n"),
])
def test_follows_the_files_indentation(tmp_path: Path, src: str, expected: str) -> None:
    out = edit(tmp_path, src, lambda ed: ed.add_tags(ed.model("a"), ["t"]))
    assert_only_insertions(src, out, [expected])


def test_model_that_does_not_exist_is_appended(tmp_path: Path) -> None:
    out = edit(tmp_path, BASIC, lambda ed: ed.add_tags(ed.model("new_model"), ["x"]))
    assert_only_insertions(BASIC, out, ["  - name: new_model\n    config:\n      tags:\n"])
    assert out.endswith("  - name: new_model\n    config:\n      tags:\n        - x\n")


def test_model_create_false_and_versions(tmp_path: Path) -> None:
    src = "models:\n  - name: m\n    latest_version: 2\n    versions:\n      - v: 1\n      - v: 2\n"
    path = write(tmp_path, src)
    ed = PropertiesEditor(path)
    assert ed.model("nope", create=False) is None
    assert ed.model("m", version=3, create=False) is None
    v2 = ed.model("m", version=2)
    assert v2["v"] == 2
    ed.set_config(v2, "contract", {"enforced": True})
    ed.model("m", version=3)
    ed.save()
    out = read(path)
    assert_only_insertions(src, out, ["        config:\n          contract:\n",
                                      "      - v: 3\n"])


def test_models_key_missing_or_null(tmp_path: Path) -> None:
    src = "version: 2\nsources:\n  - name: raw  # c\n"
    out = edit(tmp_path, src, lambda ed: ed.model("m"))
    assert_only_insertions(src, out, ["\nmodels:\n  - name: m\n"])
    assert yaml.safe_load(out)["sources"] == [{"name": "raw"}]
    src2 = "version: 2\n\nmodels:  # none yet\n\nseeds: []\n"
    out2 = edit(tmp_path, src2, lambda ed: ed.model("m"))
    assert_only_insertions(src2, out2, ["  - name: m\n"])
    assert yaml.safe_load(out2) == {"version": 2, "models": [{"name": "m"}], "seeds": []}


def test_new_file_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.yml"
    ed = PropertiesEditor(path)
    assert ed.save() is False and not path.exists()
    ed.add_tags(ed.model("m"), ["t"])
    assert ed.save() is True
    out = read(path)
    assert_only_insertions(NEW_FILE_TEXT, out, ["  - name: m\n"])
    assert yaml.safe_load(out) == {"version": 2, "models": [{"name": "m", "config": {"tags": ["t"]}}]}
    empty = write(tmp_path, "# just a comment\n", "c.yml")
    ed = PropertiesEditor(empty)
    ed.model("m")
    ed.save()
    assert read(empty) == "# just a comment\nversion: 2\n\nmodels:\n  - name: m\n"


def test_flow_entry_gets_flow_keys(tmp_path: Path) -> None:
    src = "models:\n  - {name: m, description: flow entry}  # c\n  - name: n\n"

    def fn(ed: PropertiesEditor) -> None:
        m = ed.model("m")
        ed.add_tags(m, ["t"])
        ed.set_config(m, "contract", {"enforced": True})
        ed.add_columns(m, [{"name": "id", "data_type": "int"}])

    out = edit(tmp_path, src, fn)
    assert_only_insertions(src, out)
    assert out.splitlines()[1] == ("  - {name: m, description: flow entry, config: {tags: [t], "
                                   "contract: {enforced: true}}, columns: [{name: id, data_type: int}]}  # c")


def test_anchors_aliases_and_merge_keys(tmp_path: Path) -> None:
    src = ("x-cfg: &cfg\n  materialized: table\nx-tags: &tags [a]\n\nmodels:\n"
           "  - name: m\n    config:\n      <<: *cfg\n      schema: s\n"
           "  - name: n\n    tags: *tags\n")

    def fn(ed: PropertiesEditor) -> None:
        ed.add_tags(ed.model("m"), ["t"])
        ed.set_config(ed.model("m"), "contract", {"enforced": True})

    out = edit(tmp_path, src, fn)
    assert_only_insertions(src, out, ["      tags:\n", "      contract:\n"])
    assert yaml.safe_load(out)["models"][0]["config"] == {
        "materialized": "table", "schema": "s", "tags": ["t"], "contract": {"enforced": True}}
    # extending a list shared through an alias would change x-tags too: refused
    shared = src.replace("    tags: *tags\n", "    config:\n      tags: *tags\n")
    ed = PropertiesEditor(write(tmp_path, shared))
    with pytest.raises(YamlEditError, match="alias"):
        ed.add_tags(ed.model("n"), ["z"])
    # a key only inherited through << would be shadowed: refused
    ed = PropertiesEditor(write(tmp_path, src))
    with pytest.raises(YamlEditError, match="merge key") as info:
        ed.set_config(ed.model("m"), "materialized", "view")
    assert info.value.line == 8
    assert ed.text == src and ed.save() is False


def test_anchored_entry_used_elsewhere_is_refused(tmp_path: Path) -> None:
    src = "models:\n  - &m\n    name: m\n    config: {}\nother: *m\n"
    ed = PropertiesEditor(write(tmp_path, src))
    with pytest.raises(YamlEditError, match="anchor"):
        ed.add_tags(ed.model("m"), ["t"])


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("src, line, message", [
    ("models:\n  - name: a\n   bad: [\n", 3, "not valid YAML"),
    ("models:\n  - name: a\n    x: [\n", 4, "not valid YAML"),
    ("models:\n  - name: a\n\tdescription: x\n", 3, "not valid YAML"),
    ("models:\n  name: a\n", 2, "'models:' is not a list"),
    ("models: a\n", 1, "'models:' is not a list"),
    ("- a\n- b\n", 1, "top level is not a mapping"),
    ("models: []\n---\nmodels: []\n", 2, "several YAML documents"),
])
def test_refuses_cleanly(tmp_path: Path, src: str, line: int, message: str) -> None:
    path = write(tmp_path, src)
    with pytest.raises(YamlEditError) as info:
        PropertiesEditor(path)
    err = info.value
    assert err.line == line and message in err.message
    assert str(err).startswith(f"{path}:{line}: ")
    assert read(path) == src


def test_refuses_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.yml"
    path.write_bytes(b"models:\n  - name: \xff\n")
    with pytest.raises(YamlEditError, match="UTF-8") as info:
        PropertiesEditor(path)
    assert info.value.line == 2


# --------------------------------------------------------------------------- saving


def test_save_is_atomic_keeps_mode_and_detects_concurrent_change(tmp_path: Path) -> None:
    path = write(tmp_path, BASIC)
    os.chmod(path, 0o640)
    ed = PropertiesEditor(path)
    ed.add_tags(ed.model("orders"), ["t"])
    assert ed.save() is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schema.yml"]  # no temp file left
    assert ed.save() is False
    ed.add_tags(ed.model("orders"), ["u"])
    path.write_text(BASIC + "# edited meanwhile\n")
    with pytest.raises(YamlEditError, match="changed on disk"):
        ed.save()


def test_save_through_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = write(tmp_path, BASIC, "real.yml")
    link = tmp_path / "link.yml"
    link.symlink_to(real)
    ed = PropertiesEditor(link)
    ed.model("zz")
    ed.save()
    assert link.is_symlink() and "name: zz" in read(real)


# --------------------------------------------------------------------------- corpus

CORPUS = [
    BASIC,
    "version: 2\nmodels:\n- name: m\n  description: d\n",
    "version: 2\n\nmodels:\n    -   name: m\n        config:\n            materialized: table\n",
    "models:\n  - name: m\n    config: {materialized: view, tags: [a]}\n",
    "models:\n  - {name: m, tags: a}\n",
    "x: &d {enabled: true}\nmodels:\n  - name: m\n    config:\n      <<: *d\n      tags:\n        - 'a'\n",
    "models:\n  - name: m\n    description: >-\n      folded\n      strip\n\n\n# trailing comment\n",
    "models:\n  - name: m\n    description: |+\n      keep\n\n",
    "models:\n  - name: other\n    columns:\n      - name: ID  # c\n        description: \"q\"\n",
    "version: 2\r\nmodels:\r\n  - name: m\r\n    columns:\r\n    - name: id\r\n      data_type: int",
    "%YAML 1.1\n---\nmodels:\n  - name: m\n    columns: []\n...\n",
    "models:\n  - name: m\n    description: ~\n    config:\n      contract: {alias_types: false}\n",
]


def _expected(data: Any, tags: list[str], key: str, value: Any,
              cols: list[dict[str, str]]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    models = data.setdefault("models", [])
    if models is None:
        models = data["models"] = []
    entry = next((m for m in models if m.get("name") == "m"), None)
    if entry is None:
        entry = {"name": "m"}
        models.append(entry)
    cfg = entry.get("config")
    have = set()
    for place in ((cfg or {}).get("tags"),):  # a model's top-level tags: dbt ignores them
        have.update(place if isinstance(place, list) else [] if place is None else [place])
    missing = [t for t in tags if t not in have]
    if isinstance(cfg, dict) and "tags" in cfg:
        target, k = cfg, "tags"
    else:
        if not isinstance(cfg, dict):
            entry["config"] = {}
        target, k = entry["config"], "tags"
    cur = target.get(k)
    target[k] = (cur if isinstance(cur, list) else [] if cur is None else [cur]) + missing
    if not isinstance(entry.get("config"), dict):
        entry["config"] = {}
    if isinstance(value, dict) and isinstance(entry["config"].get(key), dict):
        entry["config"][key].update(value)
    else:
        entry["config"][key] = value
    if not isinstance(entry.get("columns"), list):
        entry["columns"] = []
    for col in cols:
        hit = [c for c in entry["columns"] if c["name"].lower() == col["name"].lower()]
        if not hit:
            entry["columns"].append(dict(col))
        elif hit[0].get("data_type") is None:
            hit[0]["data_type"] = col["data_type"]
    return data


@pytest.mark.parametrize("src", CORPUS, ids=range(len(CORPUS)))
def test_corpus_data_is_input_plus_intended_changes(tmp_path: Path, src: str) -> None:
    tags = ["a", "b"]
    cols = [{"name": "id", "data_type": "integer"}, {"name": "new_col", "data_type": "text"}]
    before = yaml.safe_load(src)
    out = edit(tmp_path, src, lambda ed: (
        ed.add_tags(ed.model("m"), tags),
        ed.set_config(ed.model("m"), "contract", {"enforced": True}),
        ed.add_columns(ed.model("m"), cols)))
    assert yaml.safe_load(out) == _expected(before, tags, "contract", {"enforced": True}, cols)
    if "description: ~" not in src:
        assert_only_insertions(src, out, ["new_col"])
    assert out.endswith("\n") == src.endswith("\n")
    # idempotent: a second run changes nothing
    ed = PropertiesEditor(write(tmp_path, out, "again.yml"))
    m = ed.model("m", create=False)
    assert m is not None
    assert not ed.add_tags(m, tags)
    assert not ed.set_config(m, "contract", {"enforced": True})
    assert not ed.add_columns(m, cols)
    assert ed.save() is False


def test_untouched_quirks_survive(tmp_path: Path) -> None:
    # everything a round-trip dumper would normalise stays exactly as written
    src = ("---\nversion:   2   # spaced\nmodels:\n  - name: m\n    config:\n      enabled: True\n"
           "      meta: ~\n      tags: [ x ,y ]\n    description: \"with \\\"escapes\\\"\"\n"
           "    columns:\n    - name: id\n      data_type:   int\n")

    def fn(ed: PropertiesEditor) -> None:
        m = ed.model("m")
        ed.add_tags(m, ["t"])
        ed.set_config(m, "contract", {"enforced": True})
        ed.add_columns(m, [{"name": "n", "data_type": "text"}])

    out = edit(tmp_path, src, fn)
    assert_only_insertions(src, out, ["      contract:\n        enforced: true\n",
                                      "    - name: n\n      data_type: text\n"])
    assert "      tags: [ x ,y, t ]\n" in out


def test_hook_modules_do_not_import_yaml_edit() -> None:
    from conftest import imported_by

    hooks = ", ".join(f"dbt_bulwark.commands.{m}" for m in (
        "check", "fast_compile", "check_contracts", "check_critical_tags", "check_schema_diff"))
    assert imported_by(f"import dbt_bulwark.cli, {hooks}",
                       ["dbt_bulwark.yaml_edit", "sqlglot", "duckdb", "dbt"]) == []
    # the probe sees an import when there is one
    assert imported_by("import dbt_bulwark.yaml_edit", ["dbt_bulwark.yaml_edit"]) == [
        "dbt_bulwark.yaml_edit"]


# --------------------------------------------------------------------------- one pass per file
#
# Entries of a plain file are edited one by one in small documents and put back in one
# pass, verified once. These tests hold that path to the whole-file path byte for byte.

MULTI = [
    BASIC,
    "version: 2\n\nmodels:\n  - name: a   # first\n    description: x\n\n  # about b\n"
    "  - name: b\n    config:\n      tags: [t]\n    columns:\n      - name: id\n"
    "  - name: c\n    columns:\n    - name: id\n      data_type: int\n# trailing\n",
    "models:\n- name: a\n  description: |\n    keep\n\n- name: b\n  config: {tags: [x]}\n"
    "- name: c",
    "version: 2\r\nmodels:\r\n    -   name: a\r\n        config:\r\n            enabled: true\r\n"
    "    -   name: b\r\n",
    "version: 2\nmodels:\n  - name: a\n    versions:\n      - v: 1\n  - name: b\n"
    "    description: >-\n      folded\n\n\n",
    "models:\n  - name: a\n    description: |+\n      keep\n\n  - name: b\n    tags: [q]\n",
]


def _multi_ops(ed: PropertiesEditor) -> None:
    for name in ("a", "b", "c", "new_one", "new_two"):
        m = ed.model(name)
        ed.add_tags(m, ["critical"])
        ed.set_config(m, "contract", {"enforced": True})
        ed.add_columns(m, [{"name": "id", "data_type": "integer"},
                           {"name": f"{name}_col", "data_type": "varchar"}])
    ed.model("a", 2)
    ed.add_tags(ed.model("a", 2), ["v2"])


@pytest.mark.parametrize("src", MULTI, ids=range(len(MULTI)))
def test_one_pass_edits_equal_whole_file_edits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              src: str) -> None:
    fast = edit(tmp_path, src, _multi_ops)
    with monkeypatch.context() as mp:
        mp.setattr(PropertiesEditor, "_fast_seq", lambda self: None)
        slow = edit(tmp_path, src, _multi_ops)
    assert fast == slow
    assert_only_insertions(src, fast, ["new_one"])


def test_one_pass_parses_the_whole_file_a_fixed_number_of_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dbt_bulwark.yaml_edit as ye

    n = 60
    src = "version: 2\n\nmodels:\n" + "".join(
        f"  - name: m{i}   # c{i}\n    description: 'd {i}'\n    columns:\n      - name: id\n"
        for i in range(n))
    whole: list[int] = []
    real = ye._compose

    def counting(text: str, info: Any = None) -> Any:
        if len(text) >= len(src):
            whole.append(len(text))
        return real(text, info)

    monkeypatch.setattr(ye, "_compose", counting)
    loads: list[int] = []
    real_load = ye._load

    def counting_load(text: str) -> Any:
        loads.append(len(text))
        return real_load(text)

    monkeypatch.setattr(ye, "_load", counting_load)

    def fn(ed: PropertiesEditor) -> None:
        for i in range(n):
            m = ed.model(f"m{i}")
            ed.set_config(m, "contract", {"enforced": True})
            ed.add_columns(m, [{"name": "id", "data_type": "integer"},
                               {"name": "x", "data_type": "date"}])
        ed.model("brand_new")

    out = edit(tmp_path, src, fn)
    # read once (events), verified once before saving (PyYAML's load): not once per edit
    assert len(whole) == 1 and len(loads) == 1 and loads[0] > len(src)
    data = yaml.safe_load(out)
    assert len(data["models"]) == n + 1
    assert all(m.get("config") == {"contract": {"enforced": True}} for m in data["models"][:n])
    assert_only_insertions(src, out, ["brand_new"])


def test_one_pass_refuses_what_the_whole_file_check_rejects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # if the pieces put back ever disagree with the edits made, nothing is written
    path = write(tmp_path, BASIC)
    ed = PropertiesEditor(path)
    ed.add_tags(ed.model("orders"), ["t"])
    monkeypatch.setattr(PropertiesEditor, "_assemble",
                        lambda self: self._text.replace("orders", "orderz"))
    with pytest.raises(YamlEditError, match="more than intended"):
        ed.save()
    assert read(path) == BASIC
