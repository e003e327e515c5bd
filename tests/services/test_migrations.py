import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

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

    @pytest.mark.postgres_only
    def test_services_leave_half_of_each_page_for_the_next_bill_run(self, database_url):
        # Each run rewrites every service's billed_through: on a page with room the new
        # version stays put and no index changes (5x cheaper than on a full page).
        engine = make_engine(database_url)
        with engine.connect() as connection:
            options = connection.scalar(text(
                "SELECT reloptions FROM pg_class WHERE relname = 'service' "
                "AND relnamespace = current_schema()::regnamespace"))
        engine.dispose()
        assert "fillfactor=50" in (options or [])
