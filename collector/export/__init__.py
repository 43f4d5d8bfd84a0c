"""Collector export: stored measurements streamed out as JSON lines, in netsonde's own
rendering (``jsonl``) or as OONI Web Connectivity measurements (``ooni``), for a query
(``collector.evidence.query``), from the API (``collector.web.export``) and the command
line (``collector.export.cli``), in bounded memory. docs/design/010-export.md.
"""
