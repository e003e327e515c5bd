"""Billfold: an open-source invoice-to-cash platform for billers."""

__version__ = "0.1.0"
