"""``python -m glance_store_ng.bench SPEC``: run one benchmark step (a JSON spec, see
:mod:`.steps`) in this fresh process and print its figures as JSON.

The benchmark's runner starts it; it is not a command of its own (that is
``glance-store-ng bench``).
"""

import json
import sys

from .steps import child

print(json.dumps(child(json.loads(sys.argv[1]))))
