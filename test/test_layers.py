"""The import contract of .importlinter (the package's layers, top to bottom) holds, and the
checker would catch an upward import."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def lint_imports(config):
    return subprocess.run([LINT_IMPORTS, "--config", config, "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_the_layers_import_downward_only():
    result = lint_imports(os.path.join(ROOT, ".importlinter"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The same contract with mser.io put above mser.features: features import io, which is now
    an upward import, and the checker names it."""
    with open(os.path.join(ROOT, ".importlinter"), encoding="utf-8") as f:
        contract = f.read()
    swapped = contract.replace("    mser.features | mser.vad\n    mser.io\n",
                               "    mser.io\n    mser.features | mser.vad\n")
    assert swapped != contract
    config = tmp_path / "swapped.ini"
    config.write_text(swapped, encoding="utf-8")
    result = lint_imports(str(config))
    assert result.returncode != 0 and "BROKEN" in result.stdout
    assert "mser.features" in result.stdout and "mser.io." in result.stdout
