"""Agent CLI: ``python -m agent.cli``, the same as ``netsonde-agent``."""

import sys

from agent.cli.main import main

sys.exit(main())
