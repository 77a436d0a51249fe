"""``python -m xearthformer`` runs the command line."""

import sys

from xearthformer.cli import main

sys.exit(main())
