"""Two Alembic chains: `gateway` (keys, suspensions, held answers, audit; version table alembic_version) and
`registry` (the registry's index; alembic_version_registry). One database may hold both."""
