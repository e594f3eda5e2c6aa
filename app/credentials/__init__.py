"""The shape of passgate's credentials: key kinds and their format, how secrets are hashed, and
the scopes keys carry. Pure functions and constants that settings, authentication and every
area share (infrastructure: imports nothing from the business areas)."""
