"""``python -m agentfuse`` runs the CLI."""

import sys

from agentfuse.cli import main

sys.exit(main())
