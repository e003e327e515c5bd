"""Orders on billing accounts: recurring services, one-time pending charges, proration."""
