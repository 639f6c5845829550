"""The build backend: setuptools', plus mypyc when ``DTSIM_COMPILE=1`` asks for the compiled engine.

``DTSIM_COMPILE=1 pip install .`` builds the engine's hot modules (``setup.py``'s
``COMPILED_MODULES``) as C extensions with mypyc, which is part of mypy; without the variable the
build is setuptools' own and the package is pure Python. A PEP 517 backend may name what a build
needs beyond ``[build-system] requires``, so mypy is fetched into the isolated build environment
only when it is used: the default install downloads nothing more.

An editable install (``pip install -e .``) with ``DTSIM_COMPILE=1`` is refused: the extensions
would sit beside the sources they were compiled from and be imported instead of them, so an
edit to a compiled module would silently not run. Install the compiled engine into its own
virtual environment instead (docs/performance.md, "A compiled engine").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  (every hook not redefined here is setuptools')

MYPYC = "mypy>=2.4,<3"
"""mypyc ships inside mypy's wheels (built and tested with 2.4.1)."""


def compiling() -> bool:
    """True when the environment asks for the compiled engine (``DTSIM_COMPILE=1``)."""
    return os.environ.get("DTSIM_COMPILE", "0") == "1"


def get_requires_for_build_wheel(config_settings=None):  # noqa: ANN001, ANN201, D103
    if compiling():
        # (not setuptools' hook: it runs setup.py, which imports mypyc, not there yet; the
        # package names no setup_requires, so setuptools' answer would add nothing)
        return [MYPYC]
    return build_meta.get_requires_for_build_wheel(config_settings)


EDITABLE_REFUSED = ("DTSIM_COMPILE=1: the compiled engine installs with `pip install .` into "
                    "its own virtual environment, not with -e (its extensions would shadow the "
                    "sources you edit)")


def get_requires_for_build_editable(config_settings=None):  # noqa: ANN001, ANN201, D103
    if compiling():
        raise SystemExit(EDITABLE_REFUSED)
    return build_meta.get_requires_for_build_editable(config_settings)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001, ANN201, D103
    if compiling():  # (pip skips the hook above with --no-build-isolation, not this one)
        raise SystemExit(EDITABLE_REFUSED)
    return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)


@contextmanager
def _plain() -> Iterator[None]:
    """Within the block, setup.py sees no ``DTSIM_COMPILE`` (it would run mypyc at import)."""
    asked = os.environ.pop("DTSIM_COMPILE", None)
    try:
        yield
    finally:
        if asked is not None:
            os.environ["DTSIM_COMPILE"] = asked


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):  # noqa: ANN001, ANN201, D103
    # the metadata does not depend on the extensions: without this, setuptools runs setup.py
    # for it too, and mypyc would type-check and translate the engine twice
    with _plain():
        return build_meta.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def get_requires_for_build_sdist(config_settings=None):  # noqa: ANN001, ANN201, D103
    with _plain():  # (a source distribution carries no extension: setup.py runs without mypyc)
        return build_meta.get_requires_for_build_sdist(config_settings)


def build_sdist(sdist_directory, config_settings=None):  # noqa: ANN001, ANN201, D103
    with _plain():
        return build_meta.build_sdist(sdist_directory, config_settings)
