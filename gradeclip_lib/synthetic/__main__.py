"""``python -m gradeclip_lib.synthetic ...``: the older name of ``python -m gradeclip_lib shapes ...``, kept so that
the commands in earlier notes and READMEs still run."""

import sys

from ..cli import main

sys.exit(main(["shapes", *sys.argv[1:]]))
