"""Packaging: which folders install under which names (the metadata is in pyproject.toml).

The repository keeps ``integrations/``, ``lua_docs/`` and ``examples/`` at its top level; the
wheel and the sdist install them as ``kosmo_integrations`` (a name this project owns) and as
the data packages ``kosmo_runtime.lua_docs`` and ``kosmo_runtime.examples``, read at run time
through ``importlib.resources``. Sub-folders are found here, so a new integration folder
needs no packaging edit.
"""

from setuptools import find_namespace_packages, setup

INSTALLED_AS = {"kosmo_integrations": "integrations", "kosmo_runtime.lua_docs": "lua_docs",
                "kosmo_runtime.examples": "examples"}


def _packages() -> list[str]:
    packages = ["kosmo_runtime"]
    for name, folder in INSTALLED_AS.items():
        packages += [name, *(f"{name}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"]))]
    return packages


setup(packages=_packages(), package_dir=INSTALLED_AS)
