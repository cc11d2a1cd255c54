"""make bench: measurements of campaign-sync against its peers and the DuckDB ceiling."""
