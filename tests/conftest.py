import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fairseq_unilmv2  # noqa: E402,F401  (registers the plugin and applies compat fixes)
