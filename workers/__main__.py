"""``python -m workers``: the worker dyno (see ``workers.supervisor``)."""

import sys

from workers.supervisor import main

sys.exit(main())
