"""The only code that talks to Kubernetes.

Nothing outside this package imports the ``kubernetes`` client: it takes and
returns plain data (dicts and frozen dataclasses), so Django apps never see
the client's model objects and tests of pure logic need no cluster.
"""
