"""mireg plugin mireg-stein (estimators land in their own issue)."""
