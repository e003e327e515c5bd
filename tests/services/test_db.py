"""How Billfold's engines talk to the database."""

import pytest
from sqlalchemy import text


@pytest.mark.postgres_only
def test_postgresql_plans_each_statement_with_its_values(session):
    # A generic plan of a prepared array lookup read whole freshly filled tables.
    assert session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
