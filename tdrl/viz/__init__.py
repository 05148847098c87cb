"""Figures: what PEM excites and suppresses (paper Fig. 3), feature maps before/after the temporal
module with and without the TD loss (Fig. 4), learning curves of a run and study bar charts.

Every builder returns a :class:`matplotlib.figure.Figure` made without pyplot, so nothing here
touches a global backend or window; saving renders with Agg.
"""

from tdrl.viz.curves import build_curves_figure, fetch_history, log_learning_curves, save_learning_curves
from tdrl.viz.study_chart import (build_difference_chart, build_study_chart, log_study_chart, save_difference_chart,
                                  save_study_chart)

__all__ = ["build_curves_figure", "fetch_history", "log_learning_curves", "save_learning_curves",
           "build_study_chart", "log_study_chart", "save_study_chart"]
