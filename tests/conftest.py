"""Shared pytest setup.

The reference notebooks in tests/notebooks hold quick-mode outputs, and nbval runs them
with ``--nbval-current-env`` (the kernel inherits this process's environment), so the
mode is pinned here: a ``LABKIT_MODE=full`` left in the shell must not turn the test
suite into a paper-scale run.
"""

import os

os.environ["LABKIT_MODE"] = "quick"
