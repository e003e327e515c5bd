"""Every table, for Alembic and for tools that need the whole schema."""

from billfold.access import idempotency
from billfold.access import models as access_models
from billfold.catalog import models as catalog_models
from billfold.catalog import tax_models
from billfold.collections import models as collections_models
from billfold.core import jobs, sequences
from billfold.core.db import Base
from billfold.customers import models as customer_models
from billfold.invoicing import models as invoicing_models
from billfold.ledger import models as ledger_models
from billfold.notifications import models as notification_models
from billfold.notifications import webhook_models
from billfold.orders import models as order_models
from billfold.payments import models as payment_models
from billfold.payments.gateways import test_models as test_gateway_models
from billfold.tenants import models as tenant_models

metadata = Base.metadata

__all__ = [
    "access_models", "catalog_models", "collections_models", "customer_models", "idempotency",
    "invoicing_models", "jobs",
    "ledger_models", "metadata", "notification_models", "order_models", "payment_models",
    "sequences", "tax_models",
    "tenant_models", "test_gateway_models", "webhook_models",
]
