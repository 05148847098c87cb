"""Optuna TPE search: `python studies/search.py [--preset smoke|cpu|paper] [--samples N] [--asha]`.

Searches TD lambda (log scale), TD channel ratio, PEM position, TD-loss position and memory
initialisation (tdrl.study.search); running it again resumes the same search.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout (or the job's working dir)

from tdrl.study.search import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
