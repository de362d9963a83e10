import pathlib
import sys

# The tests are laid out like the package: api/ (nblstm.lstm & co, params, the
# demo), cpu/ and cuda/ (the backends), interop/, testing/ (nblstm.testing and
# the reference oracle); here, what spans the package (the protocol, lint,
# docstrings). Fixtures live in conftest.py files; the test modules share the
# helpers of tests/_helpers.py, made importable whatever --import-mode pytest
# runs with.
sys.path.insert(0, str(pathlib.Path(__file__).parent))
