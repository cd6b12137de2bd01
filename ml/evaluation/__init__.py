"""Evaluation records: signal metrics, walk-forward folds, the backtest, plots, the leakage guard."""
