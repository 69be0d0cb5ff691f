import sys

from codebeaker.cli import main

sys.exit(main())
