"""Collector ingest: signed batches checked and accepted, and agents enrolled.

Batch verification (``verify``), the schema compiled to msgspec types (``check``) and a
record's stored columns (``columns``), then acceptance into storage (``accept``).
"""
