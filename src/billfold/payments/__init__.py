"""Pay sessions, entries, payments, allocation, refunds, returns and chargebacks."""

# Entries listen for settled payments and finalized invoices: whoever loads payments
# (the API, the worker, the CLI) has them listening.
from billfold.payments import entries as _entries  # noqa: F401
