"""`python -m relaxd` is the `relaxd` command."""

from __future__ import annotations

import sys

from relaxd.app.cli import main

sys.exit(main())
