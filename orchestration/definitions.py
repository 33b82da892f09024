"""Everything Dagster loads: `dagster dev -m orchestration.definitions`.

The definitions are found in `orchestration/defs/` (Dagster's `defs` folder convention, set in
pyproject.toml's `[tool.dg]`): adding an asset, a sensor or a schedule means adding it there,
never editing a list here.
"""

import dagster as dg

from extract.config import REPO_ROOT

defs = dg.load_from_defs_folder(path_within_project=REPO_ROOT)
