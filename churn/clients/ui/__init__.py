"""The retention teams' web page: a Streamlit app that talks to the service over HTTP only.

`streamlit run churn/clients/ui/app.py` starts it; `CHURN_API_URL` says where the service is.
Nothing here imports the model or its libraries: the form, the template and the bounds
all come from the schema the running service publishes at `GET /v2/model`.
"""
