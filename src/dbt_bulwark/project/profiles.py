"""The user's dbt profile, found where dbt looks for it; read, never written.

Used to pick the SQL dialect (the profile target's adapter type) and, by
:mod:`dbt_bulwark.run.dbt_exec`, to run dbt on the user's own target. No dbt import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _read_yaml(path: Path) -> Any:
    from dbt_bulwark.project import yamlio

    try:
        return yamlio.load(yamlio.decode(path.read_bytes()))
    except Exception:  # noqa: BLE001 - an unreadable profiles.yml is "no profile"
        return None


def find_user_profile(profile_name: str, project_dir: Path,
                      profiles_dir: str | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The ``profiles.yml`` dbt would use for ``profile_name`` and the profile's entry:
    ``--profiles-dir``, else ``DBT_PROFILES_DIR``, else the project dir, the current
    directory and ``~/.dbt``."""
    candidates: list[Path] = []
    if profiles_dir:
        candidates.append(Path(profiles_dir))
    elif os.environ.get("DBT_PROFILES_DIR"):
        candidates.append(Path(os.environ["DBT_PROFILES_DIR"]))
    else:
        candidates += [project_dir, Path.cwd(), Path.home() / ".dbt"]
    for d in candidates:
        path = d / "profiles.yml"
        if not path.is_file():
            continue
        data = _read_yaml(path)
        if isinstance(data, dict) and isinstance(data.get(profile_name), dict):
            return d.resolve(), dict(data[profile_name])
        if profiles_dir or os.environ.get("DBT_PROFILES_DIR"):
            return None
    return None


def profile_adapter(profile: dict[str, Any], target: str | None = None) -> str | None:
    """Adapter type of the profile's ``target`` (default: its own ``target``, else dev)."""
    outputs = profile.get("outputs") or {}
    name = target or profile.get("target") or "dev"
    out = outputs.get(name) if isinstance(outputs, dict) else None
    if isinstance(out, dict) and isinstance(out.get("type"), str):
        return str(out["type"]).strip().lower()
    return None


def project_adapter(profile_name: Any, project_dir: Path) -> str | None:
    """The adapter type of a project's profile target, when a profile can be read."""
    if not isinstance(profile_name, str):
        return None
    found = find_user_profile(profile_name, project_dir)
    return profile_adapter(found[1]) if found else None


# folders never searched for a checked-in profiles.yml (installed packages, build output)
_NOT_PROFILE_DIRS = frozenset({"dbt_packages", "dbt_modules", "target", "logs", "node_modules",
                               "venv", "site-packages"})


def checked_in_adapter(profile_name: Any, project_dir: Path, depth: int = 2) -> str | None:
    """The adapter type of ``profile_name`` in a ``profiles.yml`` checked in below the
    project (``profile/profiles.yml``, ``ci/profiles.yml``: what CI passes as
    ``--profiles-dir``), up to ``depth`` folders down; None when there is none or the ones
    found disagree (one per warehouse, as multi-adapter packages keep them). A guess: dbt
    itself reads none of them without ``--profiles-dir``."""
    if not isinstance(profile_name, str):
        return None
    found: set[str] = set()
    level = [project_dir]
    for _ in range(depth):
        below: list[Path] = []
        for d in level:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or entry.name in _NOT_PROFILE_DIRS:
                    continue
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                sub = Path(entry.path)
                below.append(sub)
                path = sub / "profiles.yml"
                if not path.is_file():
                    continue
                data = _read_yaml(path)
                entry_profile = data.get(profile_name) if isinstance(data, dict) else None
                if isinstance(entry_profile, dict):
                    adapter = profile_adapter(entry_profile)
                    if adapter:
                        found.add(adapter)
        level = below
    return found.pop() if len(found) == 1 else None
