"""The API's Postgres backend under gevent: django-db-geventpool's pool, checked without a query (base.py)."""
