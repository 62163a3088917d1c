import sys

from anirec.cli import main

sys.exit(main())
