from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from billfold.core.db import make_engine
from billfold.core.migrate import alembic_config
from billfold.models import metadata


class TestMigrations:
    def test_the_migrated_schema_matches_the_models(self, database_url):
        engine = make_engine(database_url)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        engine.dispose()

    def test_downgrade_and_upgrade_again(self, fresh_database_url):
        config = alembic_config(fresh_database_url)
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        engine = make_engine(fresh_database_url)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        engine.dispose()
