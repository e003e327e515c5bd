"""Every table, for Alembic and for tools that need the whole schema."""

from billfold.access import idempotency
from billfold.access import models as access_models
from billfold.core import sequences
from billfold.core.db import Base
from billfold.customers import models as customer_models
from billfold.ledger import models as ledger_models
from billfold.tenants import models as tenant_models

metadata = Base.metadata

__all__ = [
    "access_models", "customer_models", "idempotency", "ledger_models", "metadata", "sequences",
    "tenant_models",
]
