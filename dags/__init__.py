"""MarketFlow DAGs (an importable package so DAG files share assets.py and common.py)."""
