import sys

from relaxsim.cli.app import main

sys.exit(main())
