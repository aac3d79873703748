"""Preprocessing runs where torch is not installed: it must never import it."""

import subprocess
import sys


def test_importing_preprocessing_does_not_import_torch():
    code = (
        "import sys, seg3d.preprocessing; "
        "sys.exit('torch' in sys.modules or 'seg3d.model' in sys.modules)"
    )

    result = subprocess.run([sys.executable, "-c", code], check=False)

    assert result.returncode == 0
