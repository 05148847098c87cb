"""Study table3: `python studies/ablation_tsm.py [--preset smoke|cpu|paper] [--data ROOT] [--seeds K]`.

The rows and the paper's numbers live in tdrl.study.definitions; this script only runs them.
Also: `ray job submit --working-dir . -- python studies/ablation_tsm.py ...` (see docs/studies.md).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout (or the job's working dir)

from tdrl.study.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("table3"))
