"""`imagemachines --help` stays instant: building the whole command tree imports no heavy library."""

import subprocess
import sys


def test_the_whole_command_tree_imports_nothing_heavy():
    code = ("import sys, imagemachines.cli; "
            "print(sorted(m for m in ('torch', 'torchvision', 'fastapi', 'uvicorn', 'captum', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
