"""The recovery family: CheckFree, CheckFree+, checkpointing, redundant computation, no failure.

Importing this package registers the five policies (see :mod:`policies.recovery.policies`).
"""

from policies.recovery.policies import RECOVERY_POLICIES

__all__ = ["RECOVERY_POLICIES"]
