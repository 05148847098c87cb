"""Table 4: Ablation Study - TIM (%): `python studies/ablation_tim.py [--preset smoke|cpu|bench|paper] [--seeds K] ...`.

The same as `tdrl study table4 ...`; the rows and the paper's numbers live in tdrl.study.definitions.
Also: `ray job submit --working-dir . -- python studies/ablation_tim.py ...` (docs/studies.md).
"""

import sys

from tdrl.study.cli import main

if __name__ == "__main__":
    sys.exit(main("table4"))
