"""What both chains' env.py run: migrations on the connection StateDB.migrate hands over (no alembic.ini)."""

from alembic import context


def run(metadata, version_table: str) -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, version_table=version_table,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
