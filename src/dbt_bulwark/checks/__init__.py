"""The static hooks, one module per hook (``check(project, policy, targets)``), and what only
they use: regressions against the base revision, suppressions."""
