"""Table 6: Block Position: `python studies/ablation_position.py [--preset smoke|cpu|bench|paper] [--seeds K] ...`.

The same as `tdrl study table6 ...`; the rows and the paper's numbers live in tdrl.study.definitions.
Also: `ray job submit --working-dir . -- python studies/ablation_position.py ...` (docs/studies.md).
"""

import sys

from tdrl.study.cli import main

if __name__ == "__main__":
    sys.exit(main("table6"))
