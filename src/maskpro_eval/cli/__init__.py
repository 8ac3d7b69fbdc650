"""The `maskpro-eval` command: inspect, run (tiers through pytest)."""
