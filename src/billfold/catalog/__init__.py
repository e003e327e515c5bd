"""What a biller sells: products and their prices per currency; tax rates and tax exemptions."""
