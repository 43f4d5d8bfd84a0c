"""Agent API: the collector's contract as the agent uses it.

The paths, media type and limits (``paths``, also the collector's route list), the client
session (``client``), what a failed request is called and the one exception base
(``errors``), and the control, enrolment and test-list clients.
"""
