"""``python -m codebeaker_client.mcp``: the same as ``codebeaker mcp``."""

import sys

from codebeaker_client.mcp.command import main

sys.exit(main())
