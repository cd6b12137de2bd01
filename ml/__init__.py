"""MarketFlow ML: datasets, models, training, evaluation, scoring and drift monitoring."""
