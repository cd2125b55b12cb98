"""check-schema-diff's report: its diffs as findings (one per change, with the downstream
uses as notes and a fix hint) and as the markdown table of a pull-request comment."""

from __future__ import annotations

from dbt_bulwark.checks.schema_diff import NOT_ANALYSED, Change, ModelDiff, Use
from dbt_bulwark.findings import Finding, markdown_cell
from dbt_bulwark.project.model import versioned_name


def _kind_word(c: Change) -> str:
    return "breaking" if c.breaking else "additive" if c.additive else "no schema change" \
        if c.code == "BLK430" else "unknown" if c.code == "BLK431" else "info"


def to_findings(diffs: list[ModelDiff], warn_only: bool = False) -> list[Finding]:
    out: list[Finding] = []
    for d in diffs:
        for c in d.changes:
            sev = c.severity
            if warn_only and sev == "error":
                sev = "warning"
            certain = [u for u in c.uses if u.certain]
            found_uses = [u for u in c.uses if u.kind != NOT_ANALYSED]
            msg = f"[{_kind_word(c)}] {c.message}"
            if found_uses:
                msg += f"; {len(found_uses)} downstream use(s)"
                if certain:
                    msg += f", {len(certain)} certain to break"
            why = []
            if c.breaking and sev == "error":
                if d.locked:
                    why.append("locked model")
                elif d.protected and not d.exempt:
                    why.append("protected model")
            elif c.additive and sev == "error" and d.locked:
                why.append("locked model: no schema change allowed")
            if d.exempt and c.breaking:
                why.append(d.exempt)
            if why:
                msg += f" ({'; '.join(why)})"
            out.append(Finding(c.path, c.line, 0, c.code, msg, sev, _hint(c, d), d.unique_id,
                               {"model": d.unique_id, "kind": _kind_word(c),
                                "column": c.column, "before": c.before, "after": c.after,
                                "uses": [u.to_dict() for u in c.uses]}))
            for u in c.uses:
                code = "BLK411" if c.code in ("BLK407", "BLK408", "BLK409") else "BLK410"
                usev = "info" if u.kind == "star" else sev if sev != "info" else "warning"
                if u.kind == NOT_ANALYSED:
                    code, usev = "BLK432", "info"
                    text = (f"{u.resource_type} '{u.name}' reads '{u.via}' but was not "
                            f"analysed for column '{u.column}' ({c.kind}): {u.reason}")
                elif code == "BLK411":
                    text = f"{u.resource_type} '{u.name}' refers to {c.message}"
                elif u.kind == "star":
                    text = (f"{u.resource_type} '{u.name}' passes '{u.column}' of '{u.via}' "
                            f"through `*` ({c.kind} column)")
                else:
                    verb = "uses" if u.kind != "test" else "tests"
                    state = "certain to break" if u.certain else "may break"
                    text = (f"{u.resource_type} '{u.name}' {verb} column '{u.column}' of "
                            f"'{u.via}', which was {c.kind} ({state})")
                out.append(Finding(u.path, u.line, u.col, code, text, usev,
                                   _use_hint(c, u), u.unique_id, {"change": c.code,
                                                                   "model": d.unique_id}))
    return out


def _hint(c: Change, d: ModelDiff) -> str:
    return {
        "BLK401": "keep the column, or add a new model version (versions:) and migrate consumers",
        "BLK402": "keep the old name as an alias too, or version the model",
        "BLK403": "cast back to the old type, or version the model",
        "BLK404": "keep `contract: {enforced: true}`, or version the model",
        "BLK405": "keep the constraint, or version the model",
        "BLK406": "keep materialized table/incremental, or drop the constraints in a new version",
        "BLK407": "update the models that ref() it, or set a deprecation_date first",
        "BLK408": "re-enable it, or update the models that ref() it",
        "BLK409": "keep the version until its deprecation_date, or move consumers first",
        "BLK420": "" if not d.locked else "locked models must not change: revert, or unlock",
        "BLK421": "" if not d.locked else "declare the columns and types the SQL produces "
                                          "today (bulwark check-contracts --fix writes them)",
        "BLK422": "" if not d.locked else "locked models must not change: revert, or unlock",
        "BLK423": "",
        "BLK430": "",
        "BLK431": "declare the columns (with data_type) in YAML to make the schema known",
    }.get(c.code, "")


def _use_hint(c: Change, u: Use) -> str:
    if u.kind == NOT_ANALYSED:
        return "check this node by hand: bulwark could not read its SQL"
    if c.code in ("BLK407", "BLK408", "BLK409"):
        return "point the ref() at the replacement model or version"
    if u.kind == "star":
        return "select the columns explicitly, or update the models downstream"
    if c.kind == "renamed" and c.after is not None:
        return "use the new column name here"
    return "update this use, or keep the column upstream"


def to_markdown(diffs: list[ModelDiff], base_label: str) -> str:
    lines = [f"## Output schema changes (against `{base_label}`)", ""]
    shown = [d for d in diffs if d.classification != "none" or
             any(c.severity != "info" for c in d.changes)]
    if not shown:
        lines.append("No output schema change.")
        return "\n".join(lines) + "\n"
    counts: dict[str, int] = {}
    for d in diffs:
        counts[d.classification] = counts.get(d.classification, 0) + 1
    lines.append(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    lines.append("")
    for d in shown:
        flags = [d.classification]
        if d.protected:
            flags.append("protected")
        if d.locked:
            flags.append("locked")
        if d.exempt:
            flags.append(d.exempt)
        label = versioned_name(d.name, d.version)
        lines.append(f"### `{label}` ({d.status}; {', '.join(flags)})")
        lines.append("")
        lines.append("| column | before | after | kind | downstream uses |")
        lines.append("|---|---|---|---|---|")
        for c in d.changes:
            col = c.column or "—"
            before = c.before or ("—" if c.column else "")
            after = c.after or ("—" if c.column else "")
            if c.kind == "renamed":
                after = f"renamed: {c.message.rsplit(' ', 1)[-1]}" + (f" {c.after}" if c.after
                                                                       else "")
            kind = f"{_kind_word(c)}: {c.kind}" if c.kind else _kind_word(c)
            if not c.column:
                col = f"*{c.message}*"
            uses = "<br>".join(f"`{u.label()}` {u.name} ({u.kind}"
                               f"{', certain' if u.certain else ''})" for u in c.uses) or "—"
            cells = (col, before, after, kind, uses)
            lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
