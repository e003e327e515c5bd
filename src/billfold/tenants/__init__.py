"""Tenants (billers), their system settings per mode, and their reference data."""
