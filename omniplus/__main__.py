"""`python -m omniplus` is the `omniplus` command."""

import sys

from omniplus.cli import main

sys.exit(main())
