"""Logins and tokens: revocation of JWTs when their user changes, and login throttling."""
