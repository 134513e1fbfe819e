# Sends through the real backtracepython SDK (PyPI): a handled exception, a message,
# an attachment (this file) and an attribute with an odd name. argv: endpoint [token].
import sys

import backtracepython as bt

bt.initialize(
    endpoint=sys.argv[1],
    token=sys.argv[2] if len(sys.argv) > 2 else None,
    attributes={"odd name": "x", "version": "1.0", "sdk": "python"},
    attachments=[__file__],
)
try:
    1 / 0
except Exception:
    bt.send_last_exception()
bt.send_report("a message from python")
bt.finalize()
