"""Who may call: API keys per tenant and mode (later also staff users, payers and SSO)."""
