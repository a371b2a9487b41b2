"""Test-session settings. pyproject's addopts run the tests in two pytest-xdist worker
processes; on a GPU each would preallocate 75 % of its memory for JAX, so workers allocate on
demand instead."""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
