"""The project's PostgreSQL database backend (settings ENGINE): Django's, with a health check that costs no round
trip (base.py)."""
