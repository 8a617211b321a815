"""`churn batch` under spark-submit, which runs a Python file rather than a command:

    spark-submit --master spark://HOST:7077 [--conf ...] churn/spark/submit.py score INPUT --out DIR

The master and settings are spark-submit's; the arguments are `churn batch`'s.
"""

from __future__ import annotations

import sys

from churn.clients.cli import main

if __name__ == "__main__":
    main(["batch", *sys.argv[1:]], prog_name="churn")
