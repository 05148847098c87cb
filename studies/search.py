"""Optuna search over the paper's choices: `python studies/search.py [--samples N] [--asha] ...`.

The same as `tdrl search ...` (tdrl.study.search). Also runnable with `ray job submit` (docs/studies.md).
"""

import sys

from tdrl.study.search import main

if __name__ == "__main__":
    sys.exit(main())
