"""SQL and Jinja: the dbt-flavoured Jinja environment and its stand-ins, compile of one node,
column and type inference (sqlglot), the schema resolver, SQL syntax verdicts."""

# what an unknown name (a macro of a package that is not installed...) renders as in a
# stand-in render (:mod:`dbt_bulwark.sql.jinja_env`): a word that the regression rules
# (:mod:`dbt_bulwark.checks.standins`) replace by what makes the SQL parse. Here, so that
# judging findings imports no Jinja when nothing was rendered with stand-ins.
STANDIN = "__bulwark_standin__"
