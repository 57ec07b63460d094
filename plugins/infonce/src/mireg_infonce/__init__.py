"""mireg plugin mireg-infonce (estimators land in their own issue)."""
