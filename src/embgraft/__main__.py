import sys

from embgraft.cli import main

sys.exit(main())
