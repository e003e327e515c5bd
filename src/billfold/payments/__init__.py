"""Pay sessions, entries, payments, allocation, refunds, returns and chargebacks."""
