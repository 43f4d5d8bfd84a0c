"""netsonde's tests, laid out as the source is: ``tests/agent``, ``tests/collector``, the
censor lab (``tests/lab``), end-to-end tests in it (``tests/e2e``) and the installers
(``tests/deploy``)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the checkout
