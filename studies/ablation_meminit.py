"""PEM memory initialisation m_0 (paper, Sec. 3: no numbers given): `python studies/ablation_meminit.py [--preset smoke|cpu|bench|paper] [--seeds K] ...`.

The same as `tdrl study meminit ...`; the rows and the paper's numbers live in tdrl.study.definitions.
Also: `ray job submit --working-dir . -- python studies/ablation_meminit.py ...` (docs/studies.md).
"""

import sys

from tdrl.study.cli import main

if __name__ == "__main__":
    sys.exit(main("meminit"))
