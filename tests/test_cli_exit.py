"""The `bulwark` command exits without tearing the interpreter down object by object
(cli.entry): every exit handler still runs, all output arrives, the exit code is main's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

SCRIPT = """
import atexit, sys
from pathlib import Path
from dbt_bulwark.cli import entry
marker = Path(sys.argv[1])
atexit.register(lambda: marker.write_text("exit handlers ran"))
sys.argv = ["bulwark", *sys.argv[2:]]
entry()
"""


def test_quick_exit_runs_exit_handlers_and_flushes_everything(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: shop\nversion: '1.0'\nconfig-version: 2\n")
    for i in range(300):   # more output than a pipe buffer holds
        (root / "models" / f"m{i:03}.sql").write_text(f"select {i} as id\n")
    (root / "models" / "bad.sql").write_text("select id from {{ ref('nope') }}\n")
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marker), "ls", "--output", "json", "--project-dir",
         str(root), "--repo-root", str(root), "--no-cache"],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len([json.loads(line) for line in proc.stdout.splitlines()]) == 301
    assert marker.read_text() == "exit handlers ran"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marker), "fast-compile", "--all-files", "--project-dir",
         str(root), "--repo-root", str(root), "--no-cache"],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 1 and "BLK110" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
