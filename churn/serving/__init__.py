"""Serving: the edge in front of every request, the routes and their answers, batching.

`service.py` builds the Bento from these; nothing outside serving imports it.
"""
