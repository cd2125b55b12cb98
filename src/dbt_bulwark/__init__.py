"""dbt-bulwark: fast, warehouse-free pre-commit hooks for dbt projects."""

__version__ = "0.1.0"
