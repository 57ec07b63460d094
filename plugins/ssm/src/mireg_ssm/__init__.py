"""mireg plugin mireg-ssm (estimators land in their own issue)."""
