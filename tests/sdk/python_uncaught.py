# The real backtracepython SDK (PyPI): an uncaught exception ends the script; the
# SDK's exception hook reports it before the interpreter exits. argv: endpoint token.
import sys

import backtracepython as bt

bt.initialize(endpoint=sys.argv[1], token=sys.argv[2], attributes={"sdk": "python-uncaught"})
raise RuntimeError("uncaught error from python")
