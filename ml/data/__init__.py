"""The data layer: reading the marts (handler), processors fitted on a training window, the panel
and its segments (dataset), torch sequence windows, and the one look-back reader of scoring."""
