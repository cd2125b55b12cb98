"""Reading a repository into the project model: file sources (work tree, git revision), loader, config
resolution, selectors, generic test naming, macros, YAML reading, the dbt-version rules that apply, the user's profile (for the dialect)."""
