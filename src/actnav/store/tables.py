"""Imports every module that declares tables, so ``create_schema`` sees them all.

Add one import per capability module here (``actnav.store.trials``, ``actnav.store.toxicity``).
"""

import actnav.store.accounts
import actnav.store.logistics
import actnav.store.patients
import actnav.store.toxicity  # noqa: F401
from actnav.store import trials as _trials  # noqa: F401
