"""One name is one thing: no package exports a name that is also one of its submodules.

Importing ``pkg.sub`` makes Python set the attribute ``pkg.sub`` to the module, so an export named like a
submodule is replaced by that module as soon as anything imports the submodule directly (a fresh server's first
renders failed this way: ``from imagemachines.vis.render import seeds_for`` turned ``imagemachines.vis.render``
into a module). The walk runs in a fresh interpreter, where nothing has been imported yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

WALK = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    import imagemachines

    def packages():
        yield imagemachines
        for info in pkgutil.walk_packages(imagemachines.__path__, "imagemachines."):
            if info.ispkg:
                yield importlib.import_module(info.name)

    report = {"clashes": [], "changed": [], "exports": 0}
    pkgs = list(packages())
    before = {}
    for pkg in pkgs:
        subs = {info.name for info in pkgutil.iter_modules(pkg.__path__)}
        names = list(getattr(pkg, "__all__", []))
        report["clashes"] += [f"{pkg.__name__}.{n}" for n in names if n in subs]
        for name in names:
            before[(pkg.__name__, name)] = getattr(pkg, name)   # the export as a first user gets it
    for pkg in pkgs:                                            # now every submodule, directly
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    for (pkg_name, name), value in before.items():
        report["exports"] += 1
        if getattr(sys.modules[pkg_name], name) is not value:
            report["changed"].append(f"{pkg_name}.{name}")
    print(json.dumps(report))
""")


def _walk() -> dict:
    done = subprocess.run([sys.executable, "-c", WALK], capture_output=True, text=True, timeout=240, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_package_exports_a_name_that_is_one_of_its_submodules_and_exports_stay_the_same_object():
    report = _walk()
    assert report["exports"] > 40  # the walk saw the lazy packages' names (vis, index, explain, atlas, models…)
    assert report["clashes"] == [], "exported names that are also submodules: rename the module or the export"
    assert report["changed"] == [], "exports that importing a submodule replaced"


def test_the_engine_function_survives_a_direct_import_of_its_module():
    """The exact sequence of the start-up failure: a submodule imported by path, then the package's export."""
    code = ("from imagemachines.vis.engine import seeds_for\nfrom imagemachines.vis import render\n"
            "print(callable(render) and render.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "imagemachines.vis.engine"
