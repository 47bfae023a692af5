"""Run `python -m spinlocal build|up ...`."""

import sys

from spinlocal.cli import main

sys.exit(main())
