"""The `[dbt]` extra admits every dbt-core 1.x (no cap below 2.0); only our dev extra pins."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requires(tmp_path: Path) -> dict[str, list[str]]:
    """Requirements per extra ("" = runtime) from the metadata setuptools builds from
    pyproject.toml (``egg_info`` into a temp dir: no wheel, no network)."""
    out = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()",
                          "egg_info", "--egg-base", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stderr
    (info,) = tmp_path.glob("*.egg-info")
    section = ""
    reqs: dict[str, list[str]] = {}
    for line in (info / "requires.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line:
            reqs.setdefault(section, []).append(line)
    return reqs


def _requirement(reqs: dict[str, list[str]], package: str, extra: str) -> str:
    hits = [r for r in reqs.get(extra, []) if re.match(rf"{package}(?![\w-])", r)]
    assert len(hits) == 1, (package, extra, reqs)
    return hits[0]


def _upper_bound(spec: str) -> tuple[int, ...] | None:
    m = re.search(r"<\s*([0-9][0-9.]*)", spec)
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def test_dbt_extra_does_not_cap_dbt_core_below_2(tmp_path: Path) -> None:
    reqs = _requires(tmp_path)
    spec = _requirement(reqs, "dbt-core", "dbt")
    bound = _upper_bound(spec)
    assert bound is None or bound >= (2,), spec
    assert ">=1.9" in spec.replace(" ", ""), spec
    # dbt 1.12 (supported, untested here) satisfies the extra
    from packaging.specifiers import SpecifierSet

    allowed = SpecifierSet(spec[len("dbt-core"):].strip(" ()"))
    assert "1.12.6" in allowed and "1.9.0" in allowed and "2.0.0" not in allowed


def test_dev_extra_keeps_our_own_pin_and_the_postgres_adapter(tmp_path: Path) -> None:
    reqs = _requires(tmp_path)
    assert _upper_bound(_requirement(reqs, "dbt-core", "dev")) == (1, 12)
    assert _upper_bound(_requirement(reqs, "dbt-postgres", "dev")) == (1, 12)
    # the hook environment (runtime dependencies) never needs dbt
    assert not any(r.startswith("dbt-core") for r in reqs.get("", []))
