"""Agent daemon: everything that runs on a schedule (``netsonde-agent run``).

Full mode (``full``, opened by ``startup``, its runs in ``measure``, their bookkeeping in
``runs``) and the lean idle mode (``lean``), their jobs (``jobs``) and shared state
(``state``), the spool (``spool``, its file ``spoolfile``, its meta table ``spoolmeta``),
what a full disk does to them (``disk``), upload (``upload``, retried by ``backoff``),
bandwidth budget, configuration, identity key, enrolment and private files. It measures
through ``agent.site`` and never opens a measurement socket itself.
"""
