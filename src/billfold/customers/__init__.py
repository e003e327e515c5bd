"""Customers and their billing accounts: the system of record."""
