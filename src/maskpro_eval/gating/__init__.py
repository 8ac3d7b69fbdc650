"""Whether it ships: thresholds as data, gates, the run verdict, compare-mode tables and relative gates."""
