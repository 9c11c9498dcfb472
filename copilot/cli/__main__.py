"""``python -m copilot.cli``: how ``copilot dev`` starts its worker and API (this interpreter)."""

import sys

from copilot.cli.app import main

sys.exit(main())
