import sys

from relaxsim.cli import main

sys.exit(main())
