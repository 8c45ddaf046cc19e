"""``python -m risam.cli`` (for torchrun): the ``risam`` command."""

import sys

from risam.cli.run import main

sys.exit(main())
