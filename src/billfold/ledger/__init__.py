"""Double-entry receivables ledger: append-only, and every entry sums to zero per currency."""
