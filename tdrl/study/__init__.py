"""Studies: the paper's ablation tables as Ray Tune grids (and an Optuna search), tracked in MLflow.

:mod:`tdrl.study.definitions` holds the tables (rows as config overrides, the paper's numbers),
:mod:`tdrl.study.trials` resolves a study once into its trial list (every trial's configuration,
name, label and sharing hash), :mod:`tdrl.study.naming` names what a study run creates,
:mod:`tdrl.study.runner` runs the list on Ray Tune driving Ray Train, :mod:`tdrl.study.plan` plans
it (``--plan``), :mod:`tdrl.study.sharing` finds runs trained before, :mod:`tdrl.study.search` is
the Optuna search, and :mod:`tdrl.study.tables` reads the runs back into the paper's layout.
"""

from tdrl.study.definitions import STUDIES, Row, Study, get_study

__all__ = ["STUDIES", "Row", "Study", "get_study"]
