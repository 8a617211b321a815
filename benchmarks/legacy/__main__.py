import sys

from benchmarks.legacy.bench import main

sys.exit(main())
