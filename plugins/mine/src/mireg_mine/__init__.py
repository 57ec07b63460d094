"""mireg plugin mireg-mine (estimators land in their own issue)."""
