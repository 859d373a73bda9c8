import sys

from hinode.cli import main

sys.exit(main())
