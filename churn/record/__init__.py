"""The customer record: its schema, the answers about it, its CSV form and the errors.

The innermost layer: it imports nothing else of churn, and everything else imports it.
"""
