"""Bill runs, pure invoice generation, invoices and their numbers, adjustments, rendering and delivery."""
