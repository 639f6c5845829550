"""policies."""

from policies import gradient_coding  # noqa: F401
from policies import data_parallel  # noqa: F401
from policies import pipeline  # noqa: F401
from policies import recovery  # noqa: F401
