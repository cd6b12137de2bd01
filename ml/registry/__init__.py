"""The MLflow registry: the champion card (one reader and writer of a version's metadata), the
tracking plumbing, registration of a challenger and the promotion gate."""
