"""SQL and Jinja: the dbt-flavoured Jinja environment and its stand-ins, compile of one node,
column and type inference (sqlglot), the schema resolver, SQL syntax verdicts."""
