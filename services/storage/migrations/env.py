from alembic import context
from sqlalchemy import engine_from_config, pool

# Every service's tables, so autogenerate sees the whole schema: the one module that imports them all.
import hostcheck.services.registry.models  # noqa: F401
import hostcheck.services.results.models  # noqa: F401
import hostcheck.services.results.monitormodels  # noqa: F401
from hostcheck.services.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                     prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            # Several replicas may start at once: one migrates, the others wait.
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7355608)")
            context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
