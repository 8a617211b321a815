"""The service's clients: the Python client and the Streamlit UI.

They talk to the service over HTTP only; neither ships in the Bento. (`churn`, the
operator's command line, is `churn.workflows.cli`.)
"""
