"""Bank customer churn prediction."""
