import sys

from prodigy_sim.cli import main

sys.exit(main())
