"""Deployment helpers run from a workstation or CI; not shipped in the Bento."""
