"""MarketFlow: shared settings, database bootstrap and the `marketflow` CLI."""
