"""Agent wire: the formats measurements travel and rest in, shared by the agent and collector.

The record schema and its msgpack codec (``record``, its code tables ``tables``, ``codec``,
``errors``), signed batches (``batch``) and the keys they are signed with (``keys``), the
JSON rendering (``json``) and Citizen Lab test lists (``testlist``). Nothing here opens a
socket or loads dnspython; the collector's compiled check of the same schema is
``collector.ingest``.
"""
