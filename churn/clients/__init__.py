"""The service's clients: the Python client, the CLI and the Streamlit UI.

They talk to the service over HTTP (the CLI also runs offline jobs); none ships in the
Bento.
"""
