import pathlib
import sys

# The test modules share tests/_helpers.py; make it importable whatever
# --import-mode pytest runs with.
sys.path.insert(0, str(pathlib.Path(__file__).parent))
