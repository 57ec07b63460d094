"""mireg plugin mireg-ssge (estimators land in their own issue)."""
