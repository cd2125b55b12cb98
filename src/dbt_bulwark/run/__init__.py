"""Everything that runs dbt (the only place dbt is imported): the dbt session, the build-empty and
data-quality layers, baselines, the ci orchestrator."""
