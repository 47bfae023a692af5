"""Developer commands behind the Makefile: environments, builds, local services and tests.

Everything here runs under the system `python3` (3.11 or newer) with the standard
library only, because it must work before `.venv` exists.
"""


class DevError(RuntimeError):
    """A developer command failed; the message names what failed and what to do next."""
