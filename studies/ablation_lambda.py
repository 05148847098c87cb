"""Table 7: Impact of λ (%): `python studies/ablation_lambda.py [--preset smoke|cpu|bench|paper] [--seeds K] ...`.

The same as `tdrl study table7 ...`; the rows and the paper's numbers live in tdrl.study.definitions.
Also: `ray job submit --working-dir . -- python studies/ablation_lambda.py ...` (docs/studies.md).
"""

import sys

from tdrl.study.cli import main

if __name__ == "__main__":
    sys.exit(main("table7"))
