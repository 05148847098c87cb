"""Table 5: TDLoss Ratio (%): `python studies/ablation_ratio.py [--preset smoke|cpu|bench|paper] [--seeds K] ...`.

The same as `tdrl study table5 ...`; the rows and the paper's numbers live in tdrl.study.definitions.
Also: `ray job submit --working-dir . -- python studies/ablation_ratio.py ...` (docs/studies.md).
"""

import sys

from tdrl.study.cli import main

if __name__ == "__main__":
    sys.exit(main("table5"))
