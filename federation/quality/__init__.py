"""Quality: ODCS v3 rules compiled to SQL (rules), runs (engine), SLOs (slo), history pictures (history)."""
