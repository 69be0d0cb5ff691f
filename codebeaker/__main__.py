import sys

from codebeaker_client.cli import main

sys.exit(main())
