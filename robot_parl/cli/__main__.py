import sys

from robot_parl.cli import main

sys.exit(main())
